"""`plugwire top`: frames from a real running host's Prometheus endpoint and from a host it
runs itself, through click's runner, a recorded rich console, and a real `python -m plugwire`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from rich.console import Console

import plugwire
from plugwire._cli._app import cli
from plugwire._cli._top import render_frame
from plugwire._cli._top_model import build_frame
from plugwire._cli._top_scrape import scrape
from plugwire.observe import PrometheusConfig, PrometheusExporter
from tests.support.cli_host import FLAKY, TEXT_STATS, exact_settings, plugin_entry, write_config
from tests.support.procguard import plugin_env

pytestmark = pytest.mark.usefixtures("no_leaks")

TEXT = {"text": "One sentence. And another one here."}
FAIL_THIRD = {"every": {"1203": 3}}


@pytest.fixture
def host() -> Iterator[tuple[plugwire.PluginManager[Any, Any], str]]:
    """A real host serving its metrics on a free loopback port, with text_stats and flaky registered."""
    with plugwire.PluginManager(Any, Any) as manager:
        manager.start()
        manager.register(plugwire.subprocess(sys.executable, str(TEXT_STATS), env=plugin_env()), name="text-stats")
        exact = msgspec.convert({"name": "flaky", **exact_settings()}, plugwire.PluginConfig)  # no retry, no breaker
        manager.register(plugwire.subprocess(sys.executable, str(FLAKY), env=plugin_env()), config=exact)
        exporter = PrometheusExporter(PrometheusConfig(port=0))
        manager.register_metrics_exporter(exporter)
        assert exporter.url is not None
        yield manager, exporter.url


def top(*args: str, **runner: Any) -> tuple[int, str, str]:
    result = CliRunner(**runner).invoke(cli, ["top", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_a_frame_of_a_running_host_renders_to_a_recorded_console(host: tuple[Any, str]) -> None:
    manager, url = host
    for _ in range(5):
        manager.execute("text-stats", TEXT)
    before = scrape(url, 5.0)
    for _ in range(3):
        manager.execute("text-stats", TEXT)
        with contextlib.suppress(plugwire.ExecutionError):  # the third fails
            manager.execute("flaky", FAIL_THIRD)
    frame = build_frame(before, scrape(url, 5.0), url)
    out = Console(record=True, width=120, color_system=None)
    out.print(render_frame(frame, out))
    text = out.export_text()
    assert url in text
    row = next(line for line in text.splitlines() if line.startswith("text-stats"))
    name, status, calls, rate, *_ = row.split()
    assert (name, status, calls) == ("text-stats", "healthy", "8")
    assert float(rate) > 0  # 3 calls ended between the two scrapes
    assert row.split()[-3:] == ["closed", "1", "0"]  # breaker, processes, in flight
    flaky = next(line for line in text.splitlines() if line.startswith("flaky"))
    assert flaky.split()[:3] == ["flaky", "healthy", "3"]
    assert "33.3%" in flaky  # 1 of the 3 calls between the scrapes failed
    assert "1203x1" in flaky
    assert flaky.split()[-3:] == ["disabled", "1", "0"]


def test_once_json_prints_the_frame_of_the_endpoint(host: tuple[Any, str]) -> None:
    manager, url = host
    for _ in range(4):
        manager.execute("text-stats", TEXT)
    for _ in range(6):
        with contextlib.suppress(plugwire.ExecutionError):  # the third and sixth fail
            manager.execute("flaky", FAIL_THIRD)
    code, out, err = top("--metrics", url, "--once", "--json", "--interval", "0.1")
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] == url
    assert data["window"] > 0
    flaky, row = data["plugins"]
    assert row["name"] == "text-stats"
    assert (row["status"], row["calls"], row["processes"], row["breaker"]) == ("healthy", 4, 1, "closed")
    assert row["errors_by_code"] == {}
    assert (flaky["name"], flaky["calls"], flaky["errors_by_code"]) == ("flaky", 6, {"1203": 2})


def test_a_60_column_terminal_gets_a_readable_frame(host: tuple[Any, str]) -> None:
    manager, url = host
    manager.execute("text-stats", TEXT)
    code, out, _ = top("--metrics", url, "--once", "--interval", "0.1", env={"COLUMNS": "60"})
    assert code == 0
    assert max(map(len, out.splitlines())) <= 60
    assert "text-stats  healthy  executable" in out
    assert "calls 1 " in out
    assert "flaky  healthy  executable" in out


def test_the_host_top_runs_itself_shows_its_plugins_state(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin_entry("flaky", FLAKY, **exact_settings(processes=2)))
    code, out, err = top(str(config), "--once", "--json", "--interval", "0.1")
    assert code == 0, err
    (row,) = json.loads(out)["plugins"]
    # Its own host: no calls, but the plugin's status, breaker and processes (a pool grows on demand).
    assert (row["name"], row["status"], row["breaker"], row["processes"], row["calls"]) == (
        "flaky",
        "healthy",
        "disabled",
        1,
        0,
    )


def test_piped_without_once_it_prints_count_frames(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin_entry("text-stats", TEXT_STATS, connection={"max_connections": 1}))
    code, out, _ = top(str(config), "--count", "2", "--interval", "0.05")
    assert code == 0
    assert out.count("plugwire top") == 2
    assert out.count("text-stats") == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_endpoint_exits_2_and_says_why() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    code, out, err = top("--metrics", url, "--once")
    assert code == 2
    assert err == f"plugwire: cannot read metrics from {url}: Connection refused\n"
    assert out == ""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        other = b"# TYPE other_total counter\nother_total 1\n"  # Prometheus text, not plugwire's
        status, body = (404, b"no") if self.path == "/missing" else (200, other)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, name="test-http")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("path", "message"),
    [("/missing", "HTTP 404 Not Found"), ("/metrics", "serves no plugwire series")],
)
def test_an_endpoint_that_is_not_a_hosts_exits_2(other_server: str, path: str, message: str) -> None:
    code, _, err = top("--metrics", other_server + path, "--once")
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_without_the_prometheus_extra_the_message_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client.parser", None)  # as if not installed
    code, _, err = top("--metrics", "http://127.0.0.1:9/metrics", "--once")
    assert code == 2
    assert "[1011 MISSING_DEPENDENCY]" in err
    assert "pip install 'plugwire[prometheus]'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a CONFIG file or --metrics URL"),
        (["x.yaml", "--metrics", "http://h/metrics"], "give a CONFIG file or --metrics URL"),
        (["x.yaml", "--interval", "0"], "'--interval': 0.0 is not in the range x>0"),
        (["x.yaml", "--interval", "-1"], "'--interval': -1.0 is not in the range x>0"),
        (["x.yaml", "--count", "0"], "'--count': 0 is not in the range x>=1"),
        (["x.yaml", "--json"], "--json prints one frame: add --once"),
        (["x.yaml", "--once", "--count", "2"], "--once prints one frame"),
        (["--metrics", "127.0.0.1:9464"], "expected an http:// or https:// URL"),
        (["missing.yaml", "--once"], "[1701 CONFIG_FILE_NOT_FOUND] missing.yaml"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    code, _, err = top(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_the_installed_command_reads_a_running_host(host: tuple[Any, str]) -> None:
    manager, url = host
    manager.execute("text-stats", TEXT)
    args = [sys.executable, "-m", "plugwire", "top", "--metrics", url, "--once", "--interval", "0.1"]
    env = {**os.environ, "COLUMNS": "120"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env, check=False)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("text-stats"))
    assert row.split()[:3] == ["text-stats", "healthy", "1"]


def test_ctrl_c_stops_the_host_it_runs_and_exits_0(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin_entry("text-stats", TEXT_STATS, connection={"max_connections": 1}))
    args = [sys.executable, "-m", "plugwire", "top", str(config), "--interval", "0.05"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first frame: the host is up
        assert first.startswith("plugwire top"), first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
