"""`plugwire bench`: a load generator against real plugin processes, through click's runner
and as a real `python -m plugwire` process."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from plugwire._cli._app import cli
from tests.support.cli_host import FLAKY, TEXT_STATS, exact_settings, plugin_entry, write_config
from tests.support.procguard import plugin_env

pytestmark = pytest.mark.usefixtures("no_leaks")

TEXT = json.dumps({"text": "One sentence. And another one here."})
FAIL_SOME = json.dumps({"every": {"1203": 3, "1205": 5}})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        plugin_entry("text-stats", TEXT_STATS, connection={"max_connections": 2}),
        plugin_entry("flaky", FLAKY, **exact_settings()),
    )


def bench(*args: str, **runner: Any) -> tuple[int, str, str]:
    result = CliRunner(**runner).invoke(cli, ["bench", *args])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_every_call_is_counted_and_the_quantiles_are_ordered(config: Path) -> None:
    code, out, err = bench(str(config), "text-stats", "--data", TEXT, "-n", "60", "-c", "4", "--warmup", "5", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["plugin"], data["calls"], data["succeeded"], data["failed"]) == ("text-stats", 60, 60, 0)
    assert data["concurrency"] == 4
    assert sum(bucket["count"] for bucket in data["histogram"]) == 60  # the warm-up calls are not counted
    latency = data["latency"]
    assert latency["exact"] is True
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert data["throughput"] == pytest.approx(60 / data["seconds"])
    assert data["errors"] == []


def test_failed_calls_are_counted_by_code_and_exit_1(config: Path) -> None:
    code, out, _ = bench(str(config), "flaky", "--data", FAIL_SOME, "-n", "30", "-c", "4", "--json")
    assert code == 1
    data = json.loads(out)
    # Calls 3, 6, ... 30 fail with 1203; of the others 5, 10, 20, 25 with 1205.
    assert (data["calls"], data["succeeded"], data["failed"]) == (30, 16, 14)
    assert [(e["code"], e["name"], e["count"]) for e in data["errors"]] == [
        (1203, "EXECUTION_FAILED", 10),
        (1205, "REQUEST_INVALID", 4),
    ]
    assert data["errors"][0]["message"] == "call 3 fails on purpose"


def test_the_table_shows_throughput_quantiles_the_histogram_and_errors(config: Path) -> None:
    code, out, err = bench(str(config), "flaky", "--data", FAIL_SOME, "-n", "15")
    assert code == 1
    assert err == ""  # not a terminal: no progress bar
    assert "15 (8 ok, 7 failed)" in out
    assert "calls/s" in out
    for name in ("p50", "p90", "p99", "max", "latency histogram"):
        assert name in out
    assert re.search(r"^<= [\d.]+ [µm]?s +█+ +\d+ +[\d.]+%$", out, re.MULTILINE)
    assert "1203" in out
    assert "EXECUTION_FAILED" in out
    assert "1205" in out


def test_a_duration_runs_until_it_is_over(config: Path) -> None:
    code, out, _ = bench(str(config), "text-stats", "--data", TEXT, "--duration", "0.3", "-c", "2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["calls"] == data["succeeded"] > 0
    assert data["seconds"] >= 0.3


def test_the_progress_bar_goes_to_stderr_when_asked(config: Path) -> None:
    code, out, err = bench(str(config), "text-stats", "--data", TEXT, "-n", "12", "--progress", "--json")
    assert code == 0
    assert "bench text-stats" in err
    assert "12/12" in err
    assert json.loads(out)["calls"] == 12  # stdout stays JSON


def test_exec_benchmarks_the_command_it_starts() -> None:
    command = ["--", sys.executable, str(TEXT_STATS)]
    code, out, err = bench("--exec", "--data", TEXT, "-n", "10", "--json", *command)
    assert code == 0, err
    assert json.loads(out)["plugin"] == "plugin"


def test_a_narrow_terminal_keeps_every_line_within_its_width(config: Path) -> None:
    code, out, _ = bench(str(config), "flaky", "--data", FAIL_SOME, "-n", "10", env={"COLUMNS": "60"})
    assert code == 1
    assert max(map(len, out.splitlines())) <= 60
    assert "EXECUTION_FAILED" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "'-n' / '--calls': 0 is not in the range x>=1"),
        (["-c", "-1"], "'-c' / '--concurrency': -1 is not in the range x>=1"),
        (["--duration", "0"], "'--duration': 0.0 is not in the range x>0"),
        (["--duration", "-2"], "'--duration'"),
        (["--warmup", "-1"], "'--warmup'"),
        (["--data", "{nope"], "not JSON"),
        (["--data", "@/nonexistent/request.json"], "cannot read /nonexistent/request.json"),
        (["-n", "5", "--duration", "1"], "either -n/--calls or --duration"),
    ],
)
def test_bad_options_are_usage_errors(config: Path, args: list[str], message: str) -> None:
    code, _, err = bench(str(config), "text-stats", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml", "text-stats"], "[1701 CONFIG_FILE_NOT_FOUND] missing.yaml"),
        (
            ["{config}", "nope"],
            "[1201 PLUGIN_NOT_FOUND] no plugin named 'nope' is registered; registered: flaky, text-stats",
        ),
        (["{config}"], "expected CONFIG NAME"),
        (["--exec"], "--exec needs the plugin's command"),
        (["--exec", "--", "/nonexistent/plugin"], "[1901 PROCESS_SPAWN_FAILED]"),
    ],
)
def test_a_setup_that_cannot_run_exits_2_with_its_code(config: Path, args: list[str], message: str) -> None:
    code, out, err = bench(*(a.replace("{config}", str(config)) for a in args))
    assert code == 2
    assert message in err
    assert out == ""
    assert "Traceback" not in err


def test_the_installed_command_runs_with_stderr_piped(config: Path) -> None:
    args = [sys.executable, "-m", "plugwire", "bench", str(config), "text-stats", "--data", TEXT, "-n", "20", "--json"]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=60, env={**os.environ, **plugin_env()}, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # piped: no progress bar
    assert json.loads(done.stdout)["calls"] == 20


def test_on_a_terminal_the_progress_bar_appears_by_itself(config: Path) -> None:
    leader, follower = pty.openpty()
    args = [sys.executable, "-m", "plugwire", "bench", str(config), "text-stats", "--data", TEXT, "-n", "20", "--json"]
    env = {**os.environ, **plugin_env(), "TERM": "xterm"}
    try:
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, env=env) as proc:
            os.close(follower)
            follower = -1
            terminal = b""
            with contextlib.suppress(OSError):  # EIO once the process has closed its end
                while chunk := os.read(leader, 4096):
                    terminal += chunk
            out, _ = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert proc.returncode == 0
    assert b"bench text-stats" in terminal
    assert b"20/20" in terminal
    assert json.loads(out)["calls"] == 20  # stdout is still the summary alone
