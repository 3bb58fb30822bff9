"""A config file's relative paths mean its folder; `sys.executable`; "did you mean" for keys."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import msgspec
import pytest

import plugwire
from plugwire import ConfigError, ManagerConfig, PluginConfig
from plugwire._config import validate_plugin_config
from tests.support.procguard import SRC

PLUGINS = Path(__file__).resolve().parents[2] / "support" / "plugins"

CONFIG = """\
plugins:
  - name: calc
    executable: ./bin/calc
    work_dir: run
    auth:
      method: mtls
      cert_file: certs/client.pem
      key_file: certs/client.key
      ca_file: /etc/ssl/ca.pem
      token_file: secrets/token
  - name: tool
    executable: calc-from-path
security:
  whitelist_file: plugins.whitelist
  audit_config:
    audit_file: data/audit.db
"""


def test_relative_paths_in_a_config_file_resolve_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "app"
    folder.mkdir(parents=True)
    (folder / "app.yaml").write_text(CONFIG)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = ManagerConfig.load("../etc/app/app.yaml")
    calc, tool = config.plugins
    assert calc.executable == str(folder / "bin" / "calc")
    assert calc.work_dir == str(folder / "run")
    assert calc.auth.cert_file == str(folder / "certs" / "client.pem")
    assert calc.auth.key_file == str(folder / "certs" / "client.key")
    assert calc.auth.ca_file == "/etc/ssl/ca.pem"  # absolute paths stay
    assert calc.auth.token_file == str(folder / "secrets" / "token")
    assert tool.executable == "calc-from-path"  # a bare name is looked up on PATH
    assert config.security.whitelist_file == str(folder / "plugins.whitelist")
    assert config.security.audit_config.audit_file == str(folder / "data" / "audit.db")


def test_a_config_from_a_dict_keeps_relative_paths_as_written() -> None:
    data = {"plugins": [{"name": "calc", "executable": "./bin/calc", "work_dir": "run"}]}
    (calc,) = ManagerConfig.from_dict(data).plugins
    assert (calc.executable, calc.work_dir) == ("./bin/calc", "run")


def test_sys_executable_names_the_hosts_python_in_files_dicts_and_code(tmp_path: Path) -> None:
    (tmp_path / "app.toml").write_text('[[plugins]]\nname = "py"\nexecutable = "sys.executable"\n')
    assert ManagerConfig.load(tmp_path / "app.toml").plugins[0].executable == sys.executable
    data = {"plugins": [{"name": "py", "executable": "sys.executable"}]}
    assert ManagerConfig.from_dict(data).plugins[0].executable == sys.executable
    checked = validate_plugin_config(PluginConfig(name="py", executable="sys.executable"), "plugin 'py'")
    assert checked.executable == sys.executable


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


class Resp(msgspec.Struct):
    text: str
    pid: int = 0


async def test_a_python_plugin_beside_its_config_runs_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "deploy"
    (folder / "plugins").mkdir(parents=True)
    shutil.copy(PLUGINS / "echo_plugin.py", folder / "plugins" / "echo_plugin.py")
    (folder / "app.yaml").write_text(
        "plugins:\n"
        "  - name: echo\n"
        "    executable: sys.executable\n"
        "    args: [plugins/echo_plugin.py]\n"
        "    work_dir: .\n"
        f"    env: {{PYTHONPATH: {str(SRC)!r}}}\n"
    )
    monkeypatch.chdir(tmp_path)
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.load_config(folder / "app.yaml")
        answer = await manager.execute("echo", Req(text="from the config's folder"))
    assert answer.text == "from the config's folder"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "plugins": [
                    {"name": "a", "executable": "x"},
                    {"name": "b", "executable": "x"},
                    {"name": "auth", "executable": "x", "retry": {"max_retires": 3}},
                ]
            },
            "plugins[2] ('auth').retry.max_retires: unknown key; did you mean 'max_retries'?",
        ),
        ({"shutdown_timout": "5s"}, "shutdown_timout: unknown key; did you mean 'shutdown_timeout'?"),
        (
            {"security": {"audit_config": {"audit_fil": "a.db"}}},
            "security.audit_config.audit_fil: unknown key; did you mean 'audit_file'?",
        ),
        ({"plugins": [{"name": "p", "executable": "x", "zzzz": 1}]}, "plugins[0] ('p').zzzz: unknown key"),
    ],
)
def test_an_unknown_key_suggests_the_closest_valid_one_and_names_the_plugin(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ManagerConfig.from_dict(data)
    assert caught.value.code == 1001
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (
            {"security": {"policy": "strickt"}},
            1003,
            "security.policy: 'strickt' is not a security policy (choose from 'disabled', 'permissive', 'strict',"
            " 'audit'); did you mean 'strict'?",
        ),
        (
            {"plugins": [{"name": "a", "executable": "x", "transport": "exectuable"}]},
            1007,
            "plugins[0] ('a').transport: 'exectuable' is not a transport (choose from 'executable', 'grpc',"
            " 'grpc-tls', 'in-process', 'go-plugin'); did you mean 'executable'?",
        ),
        (
            {"plugins": [{"name": "a", "executable": "x", "auth": {"method": "apikey"}}]},
            1008,
            "plugins[0] ('a').auth.method: 'apikey' is not an auth method (choose from 'none', 'api-key', 'bearer',"
            " 'basic', 'mtls', 'custom'); did you mean 'api-key'?",
        ),
        (
            {"plugins": [{"name": "a", "executable": "x", "transport": "carrier-pigeon"}]},
            1007,
            "plugins[0] ('a').transport: 'carrier-pigeon' is not a transport (choose from 'executable', 'grpc',"
            " 'grpc-tls', 'in-process', 'go-plugin')",
        ),
    ],
)
def test_an_unknown_choice_lists_the_valid_ones_and_suggests_the_closest(
    data: dict[str, object], code: int, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ManagerConfig.from_dict(data)
    assert caught.value.code == code
    assert caught.value.message == message


def test_a_whole_config_error_names_the_plugin_by_index_and_name(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        "plugins:\n  - {name: a, executable: x}\n  - {name: billing, executable: x, retry: {max_retries: lots}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        ManagerConfig.load(path)
    assert caught.value.message == f"{path}: plugins[1] ('billing').retry.max_retries: expected int, got str"


async def test_a_manager_config_built_in_code_may_name_the_hosts_python() -> None:
    plugin = PluginConfig(
        name="echo",
        executable="sys.executable",
        args=(str(PLUGINS / "echo_plugin.py"),),
        env={"PYTHONPATH": str(SRC)},
    )
    async with plugwire.AsyncPluginManager(Req, Resp, ManagerConfig(plugins=(plugin,))) as manager:
        answer = await manager.execute("echo", Req(text="built in code"))
    assert answer.text == "built in code"
