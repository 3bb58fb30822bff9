"""`plugwire.goplugin`: a module a plugin process imports without host code, that is also the
callable plugin source of go-plugin plugins; hclog lines as log records; what the host gives
a go-plugin process in its environment."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

import plugwire
import plugwire.goplugin
from plugwire._config import PluginConfig
from plugwire._goplugin import HandshakeConfig
from plugwire._transports._golaunch import GoLaunch, go_plugin_env
from plugwire._transports._hclog import TRACE, parse_hclog
from plugwire.errors import ConfigError, ErrorCode, PluginError

KV = HandshakeConfig(protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello")


def test_importing_plugwire_goplugin_loads_no_host_code() -> None:
    code = (
        "import sys, plugwire.goplugin; "
        "print(plugwire.goplugin.HandshakeConfig.__name__); "
        "bad = [m for m in sys.modules if m.startswith(('plugwire._manager', 'plugwire._transports', "
        "'plugwire._sources', 'plugwire._policies', 'grpc'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.split() == ["HandshakeConfig", "[]"]


def test_the_module_is_the_callable_source() -> None:
    source = plugwire.goplugin("./kv", "--flag", handshake=KV, service="proto.KV", env={"A": "1"}, cwd="/srv")
    config = source.configure("kv", PluginConfig(name="x", env={"B": "2"}))
    assert config.transport is plugwire.Transport.GO_PLUGIN
    assert (config.name, config.executable, config.args) == ("kv", "./kv", ("--flag",))
    assert config.env == {"B": "2", "A": "1"}
    assert config.work_dir == "/srv"
    assert plugwire.goplugin.HandshakeConfig is HandshakeConfig


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"handshake": ("BASIC_PLUGIN", "hello")}, "HandshakeConfig"),
        ({"handshake": KV, "service": ""}, "service must be"),
    ],
)
def test_bad_arguments_are_coded_errors(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        plugwire.goplugin("./kv", **kwargs)
    assert caught.value.code == ErrorCode.CONFIG_INVALID_VALUE
    assert fragment in str(caught.value)


def test_a_config_entry_describes_a_go_plugin_with_its_handshake(tmp_path: Any) -> None:
    from plugwire._sources import GoPlugin, source_for_config

    path = tmp_path / "plugins.yaml"
    path.write_text(
        "plugins:\n"
        "  - name: kv\n"
        "    transport: go-plugin\n"
        "    executable: ./kv-plugin\n"
        "    go_plugin: {protocol_version: 1, magic_cookie_key: BASIC_PLUGIN, magic_cookie_value: hello,"
        " service: proto.KV}\n"
    )
    (plugin,) = plugwire.ManagerConfig.load(str(path)).plugins
    source = source_for_config(plugin)
    assert isinstance(source, GoPlugin)
    assert source.service == "proto.KV"
    assert source.configure("kv", plugin).go_plugin == plugin.go_plugin
    # What plugwire.goplugin(...) writes into the config is what a config file holds.
    made = plugwire.goplugin("./kv-plugin", handshake=KV, service="proto.KV").configure("kv", PluginConfig(name="kv"))
    assert made.go_plugin == plugin.go_plugin


@pytest.mark.parametrize(
    ("entry", "code", "fragment"),
    [
        ("executable: ./kv", ErrorCode.CONFIG_MISSING_FIELD, "go_plugin.magic_cookie_key"),
        (
            "executable: ./kv\n    go_plugin: {magic_cookie_key: K}",
            ErrorCode.CONFIG_MISSING_FIELD,
            "go_plugin.magic_cookie_value",
        ),
        (
            "executable: ./kv\n    go_plugin: {magic_cookie_key: 'A=B', magic_cookie_value: v}",
            ErrorCode.CONFIG_INVALID_VALUE,
            "environment variable name",
        ),
        ("go_plugin: {magic_cookie_key: K, magic_cookie_value: v}", ErrorCode.CONFIG_MISSING_EXECUTABLE, "executable"),
    ],
)
def test_a_go_plugin_config_entry_without_its_handshake_is_refused(
    tmp_path: Any, entry: str, code: ErrorCode, fragment: str
) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(f"plugins:\n  - name: kv\n    transport: go-plugin\n    {entry}\n")
    with pytest.raises(PluginError) as caught:
        plugwire.ManagerConfig.load(str(path))
    assert caught.value.code == code
    assert fragment in str(caught.value)


def test_the_environment_holds_go_plugins_variables_and_none_of_the_hosts_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    launch = GoLaunch(
        config=PluginConfig(name="kv", env={"MINE": "1"}),
        handshake=KV,
        service="proto.KV",
        app_versions=(1, 2),
        min_port=10000,
        max_port=25000,
        stderr_line_limit=8192,
        stderr_tail=20,
    )
    env = go_plugin_env(launch, "/tmp/plugwire-goplugin-x", {})
    assert env["BASIC_PLUGIN"] == "hello"
    assert env["PLUGIN_PROTOCOL_VERSIONS"] == "1,2"
    assert (env["PLUGIN_MIN_PORT"], env["PLUGIN_MAX_PORT"]) == ("10000", "25000")
    assert env["PLUGIN_UNIX_SOCKET_DIR"] == env["TMPDIR"] == "/tmp/plugwire-goplugin-x"
    assert env["MINE"] == "1"
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert not [key for key in env if key.startswith("PLUGWIRE_MAGIC")]  # not plugwire's own protocol


@pytest.mark.parametrize(
    ("line", "level", "message"),
    [
        ('{"@level":"trace","@message":"t","@module":"kv","@timestamp":"x"}', TRACE, "t"),
        ('{"@level":"debug","@message":"d"}', logging.DEBUG, "d"),
        ('{"@level":"info","@message":"put","key":"a","n":3}', logging.INFO, "put: key=a n=3"),
        ('{"@level":"warn","@message":"w"}', logging.WARNING, "w"),
        ('{"@level":"error","@message":"e"}', logging.ERROR, "e"),
        ('{"@level":"nonsense","@message":"n"}', logging.INFO, "n"),
        ("[WARN]  kv: text format", logging.WARNING, "kv: text format"),
        ("panic: runtime error", logging.INFO, "panic: runtime error"),
        ('{"not":"hclog"}', logging.INFO, '{"not":"hclog"}'),
        ("{broken json", logging.INFO, "{broken json"),
    ],
)
def test_hclog_lines_become_records_at_their_level(line: str, level: int, message: str) -> None:
    got_level, got_message, _ = parse_hclog(line)
    assert (got_level, got_message) == (level, message)


async def test_channel_is_refused_for_a_plugin_that_is_not_a_go_plugin() -> None:
    class Echo:
        def info(self) -> plugwire.PluginInfo:
            return plugwire.PluginInfo(name="echo")

        async def execute(self, ctx: Any, request: dict[str, Any]) -> dict[str, Any]:
            return request

        async def health(self) -> plugwire.HealthStatus:
            return plugwire.HealthStatus(status=plugwire.Status.HEALTHY)

        async def close(self) -> None:
            return None

    async with plugwire.AsyncPluginManager(dict, dict) as manager:
        await manager.register(Echo(), name="echo")
        with pytest.raises(PluginError) as caught:
            manager.channel("echo")
        assert caught.value.code == ErrorCode.GO_NO_CHANNEL
        with pytest.raises(PluginError) as missing:
            manager.channel("nobody")
        assert missing.value.code == ErrorCode.PLUGIN_NOT_FOUND


async def test_lines_below_the_loggers_level_spend_no_rate_limit(caplog: pytest.LogCaptureFixture) -> None:
    from plugwire._transports._hclog import HclogForwarder

    forwarder = HclogForwarder("chatty", burst=10, rate=0.001)
    with caplog.at_level(logging.INFO, logger="plugwire.plugin.chatty"):
        forwarder.data_received(b'{"@level":"debug","@message":"get"}\n' * 500)
        forwarder.data_received(b'{"@level":"info","@message":"still heard"}\n')
    messages = [r.getMessage() for r in caplog.records if r.name == "plugwire.plugin.chatty"]
    assert messages == ["still heard"]  # no "lines suppressed" warning for debug lines nobody wanted
    assert len(forwarder.tail) == 20  # the crash report's tail keeps every line, debug included
