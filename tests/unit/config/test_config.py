from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import plugwire
from plugwire import ConfigError, ManagerConfig, PluginConfig, Transport
from plugwire._config import parse_duration
from plugwire.errors import ConfigFileError, ErrorCode


def plugin(**fields: Any) -> dict[str, Any]:
    return {"name": "auth", "executable": "./auth", **fields}


def test_defaults_are_the_readmes() -> None:
    config = PluginConfig(name="p", executable="x")
    assert (config.retry.max_retries, config.retry.initial_interval, config.retry.max_interval) == (3, 0.1, 5.0)
    assert (config.retry.multiplier, config.retry.random_jitter) == (2.0, True)
    breaker = config.circuit_breaker
    assert (breaker.enabled, breaker.failure_threshold, breaker.recovery_timeout) == (True, 5, 30.0)
    assert (breaker.min_request_threshold, breaker.success_threshold) == (3, 2)
    assert (config.health_check.interval, config.health_check.timeout, config.health_check.failure_limit) == (
        30.0,
        5.0,
        3,
    )
    assert (config.connection.request_timeout, config.connection.connection_timeout) == (30.0, 10.0)
    assert (config.rate_limit.enabled, config.rate_limit.requests_per_second, config.rate_limit.burst_size) == (
        False,
        10.0,
        20,
    )
    assert plugwire.default_manager_config() == ManagerConfig()


def test_config_values_are_frozen() -> None:
    config = PluginConfig(name="p", executable="x")
    with pytest.raises(AttributeError):
        config.name = "q"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5", 1.5), (2, 2.0), (0.5, 0.5)],
)
def test_durations_accept_seconds_and_unit_strings(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["-1s", -3, "soon", "5 parsecs", "", True, None, float("inf"), "5s3"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_from_dict_parses_durations_and_env_lists() -> None:
    config = ManagerConfig.from_dict(
        {"plugins": [plugin(env=["LOG_LEVEL=info", "EMPTY="], retry={"initial_interval": "250ms"})]}
    )
    assert config.plugins[0].env == {"LOG_LEVEL": "info", "EMPTY": ""}
    assert config.plugins[0].retry.initial_interval == 0.25


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (
            {"plugins": [plugin(), plugin(name="b", retry={"max_retries": "x"})]},
            1002,
            "plugins[1] ('b').retry.max_retries: ",
        ),
        (
            {"plugins": [plugin(retry={"max_retries": -1})]},
            1003,
            "plugins[0] ('auth').retry.max_retries: expected int >= 0",
        ),
        (
            {"plugins": [plugin(retry={"initial_interval": "-5s"})]},
            1003,
            "plugins[0] ('auth').retry.initial_interval: ",
        ),
        ({"plugins": [plugin(bogus=1)]}, 1001, "plugins[0] ('auth').bogus: unknown key"),
        ({"nonsense": True}, 1001, "nonsense: unknown key"),
        ({"plugins": [{"executable": "x"}]}, 1004, "plugins[0].name: required key is missing"),
        ({"plugins": [{"name": "a"}]}, 1005, "plugins[0] ('a').executable: an executable plugin needs 'executable'"),
        ({"plugins": [{"name": "a", "transport": "grpc"}]}, 1006, "plugins[0] ('a').endpoint: a grpc plugin needs"),
        (
            {"plugins": [plugin(transport="carrier-pigeon")]},
            1007,
            "plugins[0] ('auth').transport: 'carrier-pigeon' is not",
        ),
        (
            {"plugins": [plugin(auth={"method": "magic"})]},
            1008,
            "plugins[0] ('auth').auth.method: 'magic' is not an auth",
        ),
        ({"plugins": [plugin(), plugin()]}, 1009, "plugins[1] ('auth').name: duplicate plugin name 'auth'"),
        ({"plugins": [plugin(name="../etc")]}, 1012, "plugins[0] ('../etc').name: a plugin name is 1-128"),
        ({"plugins": [plugin(env=["NOVALUE"])]}, 1003, "plugins[0] ('auth').env[0]: expected 'NAME=value'"),
        (
            {"plugins": [plugin(retry={"initial_interval": 10, "max_interval": 1})]},
            1003,
            "plugins[0] ('auth').retry.max_interval: must be",
        ),
        ({"plugins": "all of them"}, 1002, "plugins: expected array, got str"),
        ({"log_level": "chatty"}, 1003, "log_level: expected one of"),
        ({"tracing": {"sample_rate": 1.5}}, 1003, "tracing.sample_rate: expected float <= 1.0"),
    ],
)
def test_invalid_config_names_the_path_and_code(data: dict[str, Any], code: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ManagerConfig.from_dict(data)
    assert caught.value.code == code
    assert caught.value.message.startswith(message), caught.value.message


def test_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="<root>: expected a mapping"):
        ManagerConfig.from_dict(["plugins"])  # type: ignore[arg-type]


def test_auth_secrets_never_appear_in_repr_or_str() -> None:
    auth = plugwire.AuthConfig(method=plugwire.AuthMethod.BASIC, username="ann", password="hunter2", api_key="k-123")
    for text in (repr(auth), str(auth), repr(PluginConfig(name="p", executable="x", auth=auth))):
        assert "hunter2" not in text
        assert "k-123" not in text
    assert "username='ann'" in repr(auth)


def test_to_dict_round_trips() -> None:
    config = ManagerConfig.from_dict({"plugins": [plugin(args=["--v"], metadata={"team": "sec"})]})
    assert ManagerConfig.from_dict(config.to_dict()) == config


YAML = """
log_level: debug
plugins:
  - name: auth-service
    transport: executable
    executable: ./plugins/auth-service
    args: ["--config", "/etc/auth.conf"]
    env: ["LOG_LEVEL=info"]
    retry: {max_retries: 3, initial_interval: 100ms, max_interval: 5s}
    connection: {request_timeout: 30s}
"""


def test_load_reads_yaml_toml_and_json_alike(tmp_path: Path) -> None:
    yaml_file = tmp_path / "plugins.yaml"
    yaml_file.write_text(YAML)
    from_yaml = ManagerConfig.load(yaml_file)
    toml_file = tmp_path / "plugins.toml"
    toml_file.write_text(
        'log_level = "debug"\n[[plugins]]\nname = "auth-service"\ntransport = "executable"\n'
        'executable = "./plugins/auth-service"\nargs = ["--config", "/etc/auth.conf"]\nenv = ["LOG_LEVEL=info"]\n'
        '[plugins.retry]\nmax_retries = 3\ninitial_interval = "100ms"\nmax_interval = "5s"\n'
        '[plugins.connection]\nrequest_timeout = "30s"\n'
    )
    json_file = tmp_path / "plugins.json"
    json_file.write_text(json.dumps(from_yaml.to_dict()))
    assert ManagerConfig.load(toml_file) == from_yaml == ManagerConfig.load(json_file)
    assert from_yaml.plugins[0].transport is Transport.EXECUTABLE
    assert from_yaml.plugins[0].retry.initial_interval == 0.1


def test_load_names_the_file_in_validation_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("plugins:\n  - name: a\n    executable: x\n    retry: {max_retries: lots}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: plugins\[0\] \('a'\)\.retry\.max_retries: expected int"):
        ManagerConfig.load(path)


def test_an_empty_file_is_the_default_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert ManagerConfig.load(path) == ManagerConfig()


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("missing.yaml", None, 1701),
        ("broken.yaml", "plugins: [unclosed", 1702),
        ("broken.json", "{", 1702),
        ("broken.toml", "x = ", 1702),
        ("binary.yaml", b"\xff\xfe\x00", 1702),
        ("plugins.ini", "[x]", 1703),
    ],
)
def test_unreadable_files_give_coded_file_errors(
    tmp_path: Path, name: str, content: str | bytes | None, code: int
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigFileError) as caught:
        ManagerConfig.load(path)
    assert caught.value.code == code
    assert name in str(caught.value)


def test_yaml_cannot_construct_python_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    path.write_text(f"plugins: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigFileError) as caught:
        ManagerConfig.load(path)
    assert caught.value.code == 1702
    assert not marker.exists()


def test_yaml_alias_bombs_are_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        refs = ", ".join(f"*a{level - 1}" for _ in range(9))
        lines.append(f"a{level}: &a{level} [{refs}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigFileError) as caught:
        ManagerConfig.load(path)
    assert caught.value.code == 1704


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugwire._config import _load

    monkeypatch.setattr(_load, "MAX_FILE_BYTES", 64)
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"log_level": "info" * 40}))
    with pytest.raises(ConfigFileError) as caught:
        ManagerConfig.load(path)
    assert caught.value.code == 1704


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"port": 70000}, "metrics.prometheus.port: expected int <= 65535"),
        ({"port": -1}, "metrics.prometheus.port: expected int >= 0"),
        ({"address": "http://0.0.0.0"}, "metrics.prometheus.address: 'http://0.0.0.0' is not an IP address"),
        ({"address": "127.0.0.1:9464"}, "is not an IP address or host name"),
        ({"namespace": "__reserved"}, "metrics.prometheus.namespace: '__reserved' is not a Prometheus name part"),
        ({"subsystem": "my-plugins"}, "metrics.prometheus.subsystem: 'my-plugins' is not a Prometheus name part"),
        ({"snapshot_timeout": 0}, "metrics.prometheus.snapshot_timeout: expected float > 0.0"),
    ],
)
def test_a_bad_prometheus_endpoint_is_refused_naming_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ManagerConfig.from_dict({"metrics": {"prometheus": {"enabled": True, **section}}})
    assert caught.value.code == ErrorCode.CONFIG_INVALID_VALUE
    assert message in str(caught.value)


def test_a_prometheus_endpoint_section_reads_from_a_file_with_its_defaults(tmp_path: Path) -> None:
    file = tmp_path / "host.yaml"
    file.write_text("metrics:\n  prometheus:\n    enabled: true\n    address: '::'\n    snapshot_timeout: 2s\n")
    endpoint = ManagerConfig.load(file).metrics.prometheus
    assert (endpoint.enabled, endpoint.address, endpoint.port, endpoint.namespace) == (True, "::", 9464, "plugwire")
    assert endpoint.snapshot_timeout == 2.0
