"""`plugwire run CONFIG`: a host in the foreground, as an operator or a container runs it.

Real processes: the installed entry point with a config of real plugins (the example
text_stats.py and tests/support/plugins/cli_plugin.py, whose `close()` leaves a marker), its
ready line, its Prometheus endpoint scraped over HTTP, a reload of CONFIG with --watch, and
its stop on SIGTERM. Calls in flight: `plugwire run` makes no calls itself, so
tests/support/plugins/run_host_with_calls.py runs the command's own host (`run_host`) with
three calls waiting in a plugin when the signal comes: the host drains them (they answer),
then exits 0; a second signal while it drains stops it at once. Bad input through click's
runner: coded one-line errors, exit 2, no traceback.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from plugwire._cli._app import cli
from tests.support.procguard import EXAMPLES, PLUGINS, pid_alive, plugin_env, wait_until

pytestmark = [pytest.mark.usefixtures("no_leaks"), pytest.mark.timeout(60)]

WAIT = 30.0  # seconds to wait for a line the host prints (generous: the machine is shared)


class Output:
    """The lines a process writes (stdout and stderr together), read as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, name="test-output-reader")
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first line from now on that matches `pattern` (a regex)."""
        while True:
            try:
                line = self._queue.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; so far:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"the process ended before {pattern!r}; it wrote:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found

    def finish(self) -> tuple[int, str]:
        """Wait for the process to end: its exit status and all it wrote."""
        status = self.process.wait(timeout=WAIT)
        if self._thread.is_alive() or not self._queue.empty():
            self._thread.join(WAIT)
            while (line := self._queue.get_nowait()) is not None:
                self.lines.append(line)
            assert self.process.stdout is not None
            self.process.stdout.close()
        return status, "\n".join(self.lines)


@pytest.fixture
def started() -> Iterator[list[Output]]:
    """The processes a test starts; any still running at its end is killed (and the test fails
    on its own assertions first)."""
    outputs: list[Output] = []
    yield outputs
    for output in outputs:
        if output.process.poll() is None:
            output.process.kill()
        output.finish()


def start(outputs: list[Output], *command: str | Path) -> Output:
    process = subprocess.Popen(
        [str(part) for part in command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **plugin_env()},
    )
    output = Output(process)
    outputs.append(output)
    return output


def plugwire_command() -> list[str]:
    """The installed `plugwire` entry point beside this interpreter (else `python -m plugwire`)."""
    script = Path(sys.executable).with_name("plugwire")
    return [str(script)] if script.exists() else [sys.executable, "-m", "plugwire"]


def cli_plugin(name: str, tmp_path: Path) -> dict[str, Any]:
    env = plugin_env(CLOSED_MARKER=str(tmp_path / f"{name}.closed"), GATE_FIFO=str(tmp_path / "gate"))
    return {"name": name, "executable": "sys.executable", "args": [str(PLUGINS / "cli_plugin.py")], "env": env}


def text_stats() -> dict[str, Any]:
    return {
        "name": "stats",
        "executable": "sys.executable",
        "args": [str(EXAMPLES / "text_stats.py")],
        "env": plugin_env(),
    }


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


def closed_by(marker: Path) -> int:
    """The pid of the plugin process whose `close()` wrote `marker`."""
    return int(marker.read_text(encoding="utf-8"))


def test_run_serves_metrics_reloads_its_config_and_stops_on_sigterm_with_status_0(
    tmp_path: Path, started: list[Output]
) -> None:
    disabled = {"name": "legacy", "executable": "/opt/legacy/plugin", "enabled": False}
    config = write(
        tmp_path / "host.yaml",
        {
            "metrics": {"prometheus": {"enabled": True, "port": 0}},
            "plugins": [text_stats(), cli_plugin("keeper", tmp_path), disabled],
        },
    )
    host = start(started, *plugwire_command(), "run", config, "--watch")
    ready = host.wait_for(
        r"^plugwire run: ready: 3 plugins \(keeper, legacy offline, stats\); metrics at (\S+); reloading on changes"
    )
    url = ready.group(1)
    text = fetch(url)
    for name in ("keeper", "stats"):
        assert f'plugwire_plugin_status{{plugin="{name}",status="healthy",transport="executable"}} 1.0' in text

    metrics = {"prometheus": {"enabled": True, "port": 0}}
    write(config, {"metrics": metrics, "plugins": [cli_plugin("keeper", tmp_path), disabled]})
    host.wait_for(r"plugwire\.manager: config reloaded from .*host\.yaml: 1 removed, 2 unchanged")
    assert 'plugin="stats"' not in fetch(url)

    host.process.send_signal(signal.SIGTERM)
    status, output = host.finish()
    assert status == 0, output
    assert "plugwire.cli: SIGTERM: stopping: waiting up to 30s for calls in flight" in output
    assert output.splitlines()[-1] == "plugwire run: stopped: 1 plugin closed, no call cut"
    assert "Traceback" not in output
    pid = closed_by(tmp_path / "keeper.closed")  # its close() ran
    assert wait_until(lambda: not pid_alive(pid))


def test_sigterm_with_calls_in_flight_drains_them_then_exits_0(tmp_path: Path, started: list[Output]) -> None:
    os.mkfifo(tmp_path / "gate")
    config = write(tmp_path / "host.yaml", {"plugins": [cli_plugin("gate", tmp_path)]})
    host = start(started, sys.executable, PLUGINS / "run_host_with_calls.py", config)
    host.wait_for(r"^ready: 3 calls started$")
    for _ in range(3):  # every call has reached the plugin, and waits there
        host.wait_for(r"plugwire\.plugin\.gate: waiting at the gate: \d")

    host.process.send_signal(signal.SIGTERM)
    host.wait_for(r"plugwire\.cli: SIGTERM: stopping")
    assert host.process.poll() is None  # draining: the calls are still waiting at the gate
    assert not (tmp_path / "gate.closed").exists()  # and the plugin is not closed yet
    fifo = os.open(tmp_path / "gate", os.O_WRONLY | os.O_NONBLOCK)  # the plugin is reading it
    os.write(fifo, b"open")
    os.close(fifo)

    status, output = host.finish()
    assert status == 0, output
    answered = sorted(re.findall(r"^call (\d) answered: (.*)$", output, re.MULTILINE))
    assert answered == [(str(n), json.dumps({"n": n, "released": True}, sort_keys=True)) for n in range(3)], output
    assert output.splitlines()[-1] == "plugwire run: stopped: 1 plugin closed, no call cut"
    pid = closed_by(tmp_path / "gate.closed")  # closed after the calls drained
    assert wait_until(lambda: not pid_alive(pid))


def test_a_second_signal_while_draining_stops_at_once(tmp_path: Path, started: list[Output]) -> None:
    os.mkfifo(tmp_path / "gate")
    config = write(tmp_path / "host.yaml", {"plugins": [cli_plugin("gate", tmp_path)]})
    host = start(started, sys.executable, PLUGINS / "run_host_with_calls.py", config)
    host.wait_for(r"^ready: 3 calls started$")
    pids = {int(host.wait_for(r"waiting at the gate: \d \(pid (\d+)\)").group(1)) for _ in range(3)}

    host.process.send_signal(signal.SIGINT)  # Ctrl-C: the calls never leave the gate
    host.wait_for(r"plugwire\.cli: SIGINT: stopping")
    host.process.send_signal(signal.SIGTERM)

    status, output = host.finish()
    assert status == 128 + signal.SIGTERM, output
    assert "SIGTERM again: stopping now" in output
    assert "answered" not in output
    assert "stopped:" not in output
    assert not (tmp_path / "gate.closed").exists()  # no graceful close
    assert wait_until(lambda: not any(pid_alive(pid) for pid in pids))  # the plugin died with the host


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "[1701 CONFIG_FILE_NOT_FOUND]"),
        ({"plugins": [{"name": "a", "executabel": "x"}]}, "[1001 CONFIG_UNKNOWN_KEY]"),
        ({"metrics": {"prometheus": {"enabled": True, "port": 99999}}}, "metrics.prometheus.port"),
        ({"plugins": [{"name": "a", "executable": "/nonexistent/plugin"}]}, "[1901 PROCESS_SPAWN_FAILED]"),
    ],
)
def test_a_host_that_cannot_start_exits_2_with_the_coded_error(
    tmp_path: Path, content: dict[str, Any] | None, message: str
) -> None:
    config = tmp_path / "host.yaml"
    if content is not None:
        write(config, content)
    result = CliRunner().invoke(cli, ["run", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.splitlines()[-1].startswith("plugwire: [")  # one line, after the host's log
    assert "Traceback" not in result.output
    assert result.stdout == ""  # never said ready


def test_a_metrics_port_in_use_exits_2_with_2103(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write(tmp_path / "host.yaml", {"metrics": {"prometheus": {"enabled": True, "port": port}}})
        result = CliRunner().invoke(cli, ["run", str(config)])
    assert result.exit_code == 2, result.output
    assert f"plugwire: [2103 EXPORTER_ADDRESS_IN_USE] PrometheusExporter: 127.0.0.1:{port} is in use" in result.stderr


def test_without_the_prometheus_extra_run_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what an environment without it imports
    config = write(tmp_path / "host.yaml", {"metrics": {"prometheus": {"enabled": True}}})
    result = CliRunner().invoke(cli, ["run", str(config)])
    assert result.exit_code == 2, result.output
    assert "[1011 MISSING_DEPENDENCY] metrics.prometheus.enabled" in result.stderr
    assert "pip install 'plugwire[prometheus]'" in result.stderr


@pytest.mark.parametrize("options", [["--log-level", "loud"], ["--bogus"], []])
def test_bad_arguments_are_usage_errors(tmp_path: Path, options: list[str]) -> None:
    config = write(tmp_path / "host.yaml", {})
    arguments = ["run", *options] + ([str(config)] if options else [])
    result = CliRunner().invoke(cli, arguments, prog_name="plugwire")
    assert result.exit_code == 2
    assert "Usage: plugwire run [OPTIONS] CONFIG" in result.output


def test_help_stays_readable_in_a_narrow_terminal() -> None:
    result = CliRunner().invoke(cli, ["run", "-h"], terminal_width=60)
    assert result.exit_code == 0
    assert "--watch" in result.output
    assert "SIGTERM" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 60
