"""`plugwire check`: the conformance checker from the command line."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from plugwire._cli._app import cli
from tests.support.procguard import EXAMPLES, plugin_env

pytestmark = pytest.mark.usefixtures("no_leaks")


def env_options() -> list[str]:
    return [option for name, value in plugin_env().items() for option in ("--env", f"{name}={value}")]


def test_a_conforming_plugin_exits_0_with_every_finding_in_json() -> None:
    args = ["check", "--json", "--request", '{"text": "One. Two."}', *env_options()]
    result = CliRunner().invoke(cli, [*args, "--", sys.executable, str(EXAMPLES / "text_stats.py")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True
    assert {f["check"] for f in data["findings"]} >= {"handshake", "call", "cancel", "shutdown", "end-of-input"}
    assert all(f["passed"] for f in data["findings"])


def test_a_program_that_is_not_a_plugin_fails_with_a_readable_table() -> None:
    result = CliRunner().invoke(cli, ["check", "--timeout", "1", "--", sys.executable, "-c", "pass"])
    assert result.exit_code == 1
    assert "FAIL" in result.output
    assert "handshake" in result.output
    assert "required check(s) failed" in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--request", "{nope"], "not JSON"), (["--env", "NOVALUE"], "expected NAME=VALUE")],
)
def test_bad_options_exit_2_and_say_why(options: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["check", *options, "--", sys.executable, "-c", "pass"])
    assert result.exit_code == 2
    assert message in result.output


def test_a_command_that_cannot_start_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["check", "--", "/nonexistent/plugin"])
    assert result.exit_code == 2
    assert "cannot start '/nonexistent/plugin'" in result.output
