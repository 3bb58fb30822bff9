"""`plugwire call`: one call to a real plugin process, from a config file or `--exec`.

The answer is JSON on stdout (exit 0); a call's error is one coded line on stderr, or
`{"error": {...}}` on stdout with --json (exit 1); no such plugin, bad data, bad numbers, a
missing or invalid config and a plugin that cannot start are usage errors (exit 2).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from plugwire._cli._app import cli
from tests.support.procguard import EXAMPLES, PLUGINS, plugin_env

pytestmark = [pytest.mark.usefixtures("no_leaks"), pytest.mark.timeout(60)]

PLUGIN = str(PLUGINS / "cli_plugin.py")
TEXT = {"text": "One fish. Two fish. Red fish, blue fish."}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Two good plugins and one whose executable does not exist."""
    path = tmp_path / "plugins.yaml"
    plugins = [
        {"name": "stats", "executable": "sys.executable", "args": [str(EXAMPLES / "text_stats.py")]},
        {"name": "echo", "executable": "sys.executable", "args": [PLUGIN]},
        {"name": "broken", "executable": "/nonexistent/plugin"},
    ]
    for plugin in plugins:
        plugin["env"] = plugin_env()
    path.write_text(yaml.safe_dump({"plugins": plugins}), encoding="utf-8")
    return path


def call(*arguments: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["call", *arguments], input=stdin, prog_name="plugwire")


def test_a_call_prints_the_plugins_answer_as_json(config: Path) -> None:
    result = call(str(config), "stats", "--data", json.dumps(TEXT))
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["words"] == 8
    assert answer["sentences"] == 3
    assert answer["top_words"] == [["fish", 4], ["one", 1], ["two", 1], ["red", 1], ["blue", 1]]


def test_only_the_plugin_called_is_started(config: Path) -> None:
    # "broken" cannot start: a host of the whole file could not either.
    assert call(str(config), "echo", "--data", "1").stdout.strip() == "1"


def test_the_plugin_gets_and_answers_plain_json_values(config: Path) -> None:
    data = {"list": [1, 2.5, None, True, "é"], "nested": {"a": {"b": []}}, "n": -7}
    result = call(str(config), "echo", "--data", json.dumps(data))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == data


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_data_comes_from_a_file_or_stdin(config: Path, tmp_path: Path, source: str) -> None:
    if source == "file":
        (tmp_path / "request.json").write_text(json.dumps(TEXT), encoding="utf-8")
        result = call(str(config), "stats", "--data", f"@{tmp_path / 'request.json'}")
    else:
        result = call(str(config), "stats", "--data", "-", stdin=json.dumps(TEXT))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["words"] == 8


def test_exec_calls_a_command_with_options_of_its_own_after_double_dash() -> None:
    result = call("--exec", "--data", '{"x": [1, 2]}', "--", sys.executable, "-u", PLUGIN)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"x": [1, 2]}


def test_a_call_that_fails_exits_1_with_its_code(config: Path) -> None:
    result = call(str(config), "echo", "--data", '{"fail": "the ledger is locked"}')
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("plugwire: [1203 EXECUTION_FAILED] ")
    assert "the ledger is locked" in result.stderr


def test_with_json_a_failed_call_prints_the_error_as_json(config: Path) -> None:
    result = call(str(config), "echo", "--json", "--data", '{"fail": "the ledger is locked"}')
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["name"], error["plugin"]) == (1203, "EXECUTION_FAILED", "echo")
    assert "the ledger is locked" in error["message"]


def test_a_plugin_that_crashes_during_the_call_exits_1_with_the_code() -> None:
    result = call("--exec", "--data", '{"crash": true}', sys.executable, PLUGIN)
    assert result.exit_code == 1
    assert "plugwire: [1207 OUTCOME_UNKNOWN] the plugin failed after receiving the request" in result.stderr
    assert "Traceback" not in result.output


def test_timeout_bounds_the_call(config: Path) -> None:
    result = call(str(config), "echo", "--timeout", "0.3", "--data", '{"sleep": 30}')
    assert result.exit_code == 1
    assert "plugwire: [1204 TIMEOUT]" in result.stderr


def test_an_unknown_plugin_is_a_usage_error_naming_the_plugins(config: Path) -> None:
    result = call(str(config), "stast", "--data", "{}")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("plugwire: [1201 PLUGIN_NOT_FOUND] no plugin named 'stast' in ")
    assert "did you mean 'stats'? (plugins: broken, echo, stats)" in line
    result = call(str(config), "stast", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == 1201


def test_the_long_running_parts_of_a_config_are_left_off(tmp_path: Path) -> None:
    """A call next to a running host of the same file: its metrics port is taken, and its
    file is watched; `call` serves no endpoint and watches nothing."""
    path = tmp_path / "host.yaml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        data = {
            "metrics": {"prometheus": {"enabled": True, "port": taken.getsockname()[1]}},
            "hot_reload": {"enabled": True, "file": "host.yaml"},
            "plugins": [{"name": "echo", "executable": "sys.executable", "args": [PLUGIN], "env": plugin_env()}],
        }
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        result = call(str(path), "echo", "--data", '"hi"')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == "hi"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["CONFIG", "stats", "--data", "{nope"], "Invalid value for --data: the value is not JSON"),
        (["CONFIG", "stats", "--data", "@/nonexistent/request.json"], "cannot read /nonexistent/request.json"),
        (["CONFIG", "stats", "--timeout", "0"], "Invalid value for '--timeout': 0.0 is not in the range x>0"),
        (["CONFIG", "stats", "--timeout", "-1"], "Invalid value for '--timeout': -1.0 is not in the range x>0"),
        (["CONFIG", "stats", "--timout", "1"], "No such option '--timout'"),
        (["CONFIG"], "expected CONFIG NAME (or --exec COMMAND...), got 1 argument(s)"),
        (["CONFIG", "stats", "extra"], "got 3 argument(s)"),
        (["--exec"], "--exec needs the COMMAND that starts the plugin"),
    ],
)
def test_bad_arguments_are_usage_errors(config: Path, arguments: list[str], message: str) -> None:
    result = call(*[str(config) if a == "CONFIG" else a for a in arguments])
    assert result.exit_code == 2
    assert "Usage: plugwire call [OPTIONS] CONFIG NAME | --exec COMMAND..." in result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "plugwire: [1701 CONFIG_FILE_NOT_FOUND]"),
        ({"plugins": [{"name": "a", "executabel": "x"}]}, "plugwire: [1001 CONFIG_UNKNOWN_KEY] "),
    ],
)
def test_a_missing_or_invalid_config_exits_2_with_its_code(
    tmp_path: Path, content: dict[str, Any] | None, message: str
) -> None:
    path = tmp_path / "plugins.yaml"
    if content is not None:
        path.write_text(yaml.safe_dump(content), encoding="utf-8")
    result = call(str(path), "a")
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert "did you mean 'executable'?" in result.stderr or content is None


def test_a_plugin_that_cannot_start_exits_2_with_its_code(config: Path) -> None:
    for arguments in ([str(config), "broken"], ["--exec", "/nonexistent/plugin"]):
        result = call(*arguments)
        assert result.exit_code == 2
        assert "plugwire: [1901 PROCESS_SPAWN_FAILED] cannot start plugin" in result.stderr.splitlines()[-1]


def test_the_installed_command_calls_a_plugin(config: Path) -> None:
    script = Path(sys.executable).with_name("plugwire")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "plugwire"]
    done = subprocess.run(
        [*command, "call", str(config), "stats", "--data", "-"],
        input=json.dumps(TEXT),
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "60"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["words"] == 8
    assert done.stderr == ""  # warnings only, by default: a clean call says nothing else


def test_a_disabled_plugin_fails_the_call_with_1202(tmp_path: Path) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(yaml.safe_dump({"plugins": [{"name": "old", "executable": "/x", "enabled": False}]}))
    result = call(str(path), "old")
    assert result.exit_code == 1
    assert result.stderr.strip() == "plugwire: [1202 PLUGIN_DISABLED] plugin 'old' is disabled"


def test_a_plugin_found_by_discovery_is_called_and_a_missing_one_named(tmp_path: Path) -> None:
    from tests.support.discovered import plugin_folder, write_plugin

    write_plugin(plugin_folder(tmp_path) / "greeter", "2.0.0")
    path = tmp_path / "plugins.yaml"
    path.write_text(yaml.safe_dump({"discovery": {"enabled": True, "directories": ["plugins"]}}), encoding="utf-8")
    result = call(str(path), "greeter", "--data", '{"text": "hi"}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"] == "2.0.0:hi"
    result = call(str(path), "greter")
    assert result.exit_code == 2
    assert "[1201 PLUGIN_NOT_FOUND] no plugin named 'greter' in the plugins discovered; did you mean 'greeter'?" in (
        result.stderr
    )
