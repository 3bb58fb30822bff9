"""`plugwire list` and `plugwire health`, against real plugin processes, through click's runner
and as a real `python -m plugwire` process."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import plugwire
from plugwire._cli._app import cli

VERSIONED = Path(__file__).resolve().parents[2] / "support" / "plugins" / "versioned_plugin.py"


def run(*args: str, columns: int = 200) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": str(columns)})
    return result.exit_code, result.stdout, result.stderr


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def plugin(name: str, *args: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "executable": "sys.executable", "args": [str(VERSIONED), *args], **fields}


def write_config(folder: Path, *plugins: dict[str, Any], **sections: Any) -> Path:
    file = folder / "host.json"
    file.write_text(json.dumps({"plugins": list(plugins), **sections}))
    return file


def marker_plugin(folder: Path, name: str) -> Path:
    """A plugin that leaves a file when it runs (and then fails its start)."""
    path = folder / name
    path.write_text(f"#!/bin/sh\ntouch '{folder / (name + '.ran')}'\nexit 3\n")
    path.chmod(0o755)
    return path


# ------------------------------------------------------------------------------ list


def test_list_shows_version_hash_and_the_plugin_that_did_not_start(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        plugin("old", "1.4.2"),
        {"name": "ghost", "executable": "./no-such-plugin"},
        plugin("paused", "9.9.9", enabled=False),
    )
    code, out, _ = run("list", "--json", str(config))
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    rows = {row["name"]: row for row in report["plugins"]}
    assert list(rows) == ["old", "ghost", "paused"]
    old, ghost, paused = rows["old"], rows["ghost"], rows["paused"]
    assert (old["state"], old["version"], old["transport"]) == ("running", "1.4.2", "executable")
    assert old["hash"] == sha256(VERSIONED)  # the script the interpreter runs
    assert old["error"] is None
    assert old["whitelist"] is None  # no whitelist in this config
    assert ghost["state"] == "failed"
    assert (ghost["error"]["code"], ghost["error"]["name"]) == (1901, "PROCESS_SPAWN_FAILED")
    assert (paused["state"], paused["version"]) == ("disabled", None)

    code, out, _ = run("list", str(config))
    assert code == 1
    assert "1.4.2" in out
    assert "ghost: [1901 PROCESS_SPAWN_FAILED]" in out


def test_list_exits_0_when_every_plugin_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin("a", "1.0.0"), plugin("b", "2.0.0"))
    code, out, _ = run("list", str(config))
    assert code == 0, out
    assert "1.0.0" in out
    assert "2.0.0" in out


def test_list_gives_the_whitelist_verdict_of_the_security_engine(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    pinned = marker_plugin(plugins, "pinned")
    changed = marker_plugin(plugins, "changed")
    switched_off = marker_plugin(plugins, "switched-off")
    stranger = marker_plugin(plugins, "stranger")
    entries = [
        {"name": "pinned", "path": str(pinned), "hash": sha256(pinned)},
        {"name": "changed", "path": str(changed), "hash": "sha256:" + "0" * 64},
        {"name": "switched-off", "path": str(switched_off), "hash": sha256(switched_off), "enabled": False},
    ]
    whitelist = tmp_path / "plugins.whitelist.json"
    whitelist.write_text(json.dumps({"version": "1.0", "plugins": entries}))
    config = write_config(
        tmp_path,
        *({"name": path.name, "executable": str(path)} for path in (pinned, changed, switched_off, stranger)),
        security={"enabled": True, "policy": "permissive", "whitelist_file": str(whitelist)},
    )
    code, out, _ = run("list", "--no-start", "--json", str(config))
    assert code == 0  # nothing was started, so nothing failed
    rows = {row["name"]: row for row in json.loads(out)["plugins"]}
    verdicts = {name: (row["whitelist"]["verdict"], row["whitelist"]["code"]) for name, row in rows.items()}
    assert verdicts == {
        "pinned": ("allowed", None),
        "changed": ("hash mismatch", 1802),
        "switched-off": ("disabled", 1803),
        "stranger": ("not listed", 1801),
    }
    assert {row["state"] for row in rows.values()} == {"not started"}
    assert rows["changed"]["hash"] == sha256(changed)
    assert list(plugins.glob("*.ran")) == []  # --no-start started nothing

    code, out, _ = run("list", "--no-start", str(config))
    assert "hash mismatch" in out
    assert f"whitelist: {whitelist} (policy: permissive)" in out


def test_list_under_a_strict_policy_shows_the_refusal_as_the_start_error(tmp_path: Path) -> None:
    whitelist = tmp_path / "plugins.whitelist.json"
    whitelist.write_text(json.dumps({"version": "1.0", "plugins": []}))
    config = write_config(
        tmp_path, plugin("a", "1.0.0"), security={"enabled": True, "policy": "strict", "whitelist_file": str(whitelist)}
    )
    code, out, _ = run("list", "--json", str(config))
    assert code == 1
    (row,) = json.loads(out)["plugins"]
    assert row["state"] == "failed"
    assert row["error"]["code"] == row["whitelist"]["code"] == 1801


def test_list_dir_shows_what_discovery_would_register(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    (folder / "greeter").mkdir(parents=True)
    script = folder / "echo-plugin"
    script.write_text(f"#!{sys.executable}\n" + VERSIONED.read_text())
    script.chmod(0o755)
    command = folder / "greeter" / "run.py"
    command.write_text(script.read_text())
    command.chmod(0o755)
    (folder / "greeter" / "plugin.yaml").write_text("name: greeter\ncommand: run.py\nargs: ['0.3.0']\n")
    marker_plugin(folder, "broken-plugin")
    (folder / "README").write_text("not a plugin\n")

    code, out, _ = run("list", "--dir", str(folder), "--json")
    assert code == 1
    rows = {row["name"]: row for row in json.loads(out)["plugins"]}
    assert sorted(rows) == ["broken-plugin", "echo-plugin", "greeter"]
    assert rows["echo-plugin"]["state"] == "running"
    assert rows["echo-plugin"]["origin"] == "discovered"
    assert rows["echo-plugin"]["hash"] == sha256(script)
    assert rows["broken-plugin"]["state"] == "failed"
    assert rows["broken-plugin"]["error"]["code"] == 1902
    greeter = rows["greeter"]  # from its manifest: the version is the one its handshake gave
    assert (greeter["state"], greeter["version"], greeter["hash"]) == ("running", "0.3.0", sha256(command))

    code, out, _ = run("list", "--dir", str(folder), "--pattern", "echo-*", "--json")
    assert code == 0  # the pattern picks files; folders with a manifest are always looked at
    assert [row["name"] for row in json.loads(out)["plugins"]] == ["echo-plugin", "greeter"]


def test_list_dir_no_start_runs_nothing(tmp_path: Path) -> None:
    marker_plugin(tmp_path, "quiet-plugin")
    code, out, _ = run("list", "--dir", str(tmp_path), "--no-start", "--json")
    assert code == 0
    (row,) = json.loads(out)["plugins"]
    assert (row["name"], row["state"], row["version"]) == ("quiet-plugin", "not started", None)
    assert row["hash"] == sha256(tmp_path / "quiet-plugin")
    assert not (tmp_path / "quiet-plugin.ran").exists()


def test_list_no_start_fails_on_a_plugin_whose_file_is_missing(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin("a", "1.0.0"), {"name": "ghost", "executable": "./no-such-plugin"})
    code, out, _ = run("list", "--no-start", "--json", str(config))
    assert code == 1
    rows = {row["name"]: row for row in json.loads(out)["plugins"]}
    assert rows["a"]["error"] is None
    assert rows["ghost"]["state"] == "not started"
    assert (rows["ghost"]["error"]["code"], rows["ghost"]["hash"]) == (1701, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a CONFIG file or --dir DIR"),
        (("host.json", "--dir", "."), "give a CONFIG file or --dir DIR"),
        (("host.json", "--pattern", "x*"), "--pattern goes with --dir"),
        (("missing.yaml",), "[1701 CONFIG_FILE_NOT_FOUND]"),
        (("--dir", "missing"), "[1701 CONFIG_FILE_NOT_FOUND] missing: no such folder"),
        (("--dir", ".", "--pattern", "a/b"), "[1003 CONFIG_INVALID_VALUE] discovery.pattern"),
    ],
)
def test_list_bad_input_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path)
    code, out, err = run("list", *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_list_and_health_refuse_an_invalid_config_with_its_code(tmp_path: Path) -> None:
    config = tmp_path / "host.yaml"
    config.write_text("plugins: [{name: a, transport: grcp, endpoint: x}]\n")
    for command in ("list", "health"):
        code, _, err = run(command, str(config))
        assert code == 2
        assert "[1007 CONFIG_UNKNOWN_TRANSPORT]" in err
        assert "did you mean 'grpc'?" in err


def test_list_stays_readable_in_a_narrow_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin("a-rather-long-plugin-name", "1.0.0"), {"name": "x", "executable": "./no"})
    code, out, _ = run("list", str(config), columns=50)
    assert code == 1
    assert max(len(line) for line in out.splitlines()) <= 50
    assert "a-rather-long-plugin-name: running, version 1.0.0" in out
    assert "[1901 PROCESS_SPAWN_FAILED]" in out


# ---------------------------------------------------------------------------- health


def test_health_exits_0_when_every_plugin_is_healthy(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin("a", "1.0.0"), plugin("paused", "1.0.0", enabled=False))
    code, out, _ = run("health", "--json", str(config))
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    statuses = {row["name"]: row["status"] for row in report["plugins"]}
    assert statuses == {"a": "healthy", "paused": "disabled"}
    (checked,) = (row for row in report["plugins"] if row["name"] == "a")
    assert checked["response_time"] >= 0
    assert checked["last_check"] == pytest.approx(time.time(), abs=60)


def test_health_exits_1_for_a_plugin_that_is_not_healthy_or_did_not_start(tmp_path: Path) -> None:
    sick = write_config(tmp_path, plugin("a", "1.0.0"), plugin("sick", "1.0.0", "unhealthy"))
    code, out, _ = run("health", "--json", str(sick))
    assert code == 1
    rows = {row["name"]: row for row in json.loads(out)["plugins"]}
    assert rows["a"]["status"] == "healthy"
    assert rows["sick"]["status"] == "degraded"  # one failed check of health_check.failure_limit 3
    assert "unhealthy" in rows["sick"]["message"]
    code, _, _ = run("health", "--allow-degraded", str(sick))
    assert code == 0

    missing = write_config(tmp_path, plugin("a", "1.0.0"), {"name": "ghost", "executable": "./no-such-plugin"})
    code, out, _ = run("health", str(missing))
    assert code == 1
    assert "NOT healthy" in out
    assert "1901" in out


@pytest.mark.parametrize("args", [("--timeout", "-1"), ("--timeout", "0"), ()])
def test_health_bad_input_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    config = write_config(tmp_path, plugin("a", "1.0.0"))
    code, _, err = run("health", *args, *([str(config)] if args else []))
    assert code == 2
    assert "Traceback" not in err


# --------------------------------------------------------------- health --metrics URL


class Echo(plugwire.Plugin[dict[str, Any], dict[str, Any]]):
    def __init__(self, status: plugwire.Status) -> None:
        self.status = status

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo")

    async def execute(self, ctx: plugwire.ExecutionContext, request: dict[str, Any]) -> dict[str, Any]:
        return request

    async def health(self) -> plugwire.HealthStatus:
        return plugwire.HealthStatus(status=self.status, message=self.status.value)

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(("status", "exit_code"), [(plugwire.Status.HEALTHY, 0), (plugwire.Status.UNHEALTHY, 1)])
async def test_health_metrics_reads_a_running_hosts_prometheus_endpoint(
    status: plugwire.Status, exit_code: int
) -> None:
    pytest.importorskip("prometheus_client")
    manager: plugwire.AsyncPluginManager[dict[str, Any], dict[str, Any]] = plugwire.AsyncPluginManager(
        dict[str, Any], dict[str, Any]
    )
    async with manager:
        await manager.register(Echo(plugwire.Status.HEALTHY), name="steady")
        await manager.register(Echo(status), name="probed")
        exporter = plugwire.PrometheusExporter(plugwire.PrometheusConfig(port=0))
        await manager.register_metrics_exporter(exporter)
        await manager.health()
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        # The scrape needs this loop to take the snapshot: the command runs in a thread.
        code, out, _ = await asyncio.to_thread(run, "health", "--metrics", url, "--json")
    assert code == exit_code, out
    report = json.loads(out)
    statuses = {row["name"]: (row["transport"], row["status"]) for row in report["plugins"]}
    expected = "healthy" if status is plugwire.Status.HEALTHY else "degraded"
    assert statuses == {"steady": ("in-process", "healthy"), "probed": ("in-process", expected)}
    assert report["stale"] is False


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A plain HTTP server of the files in a folder (an endpoint that is not a plugwire host's)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, name="test-static-server")
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_health_metrics_fails_on_a_stale_snapshot(static_server: tuple[Path, str]) -> None:
    pytest.importorskip("prometheus_client")
    folder, base = static_server
    (folder / "metrics").write_text(
        "# TYPE plugwire_plugin_status gauge\n"
        'plugwire_plugin_status{plugin="a",transport="executable",status="healthy"} 1\n'
        'plugwire_plugin_status{plugin="a",transport="executable",status="offline"} 0\n'
        "# TYPE plugwire_metrics_snapshot_timestamp_seconds gauge\n"
        f"plugwire_metrics_snapshot_timestamp_seconds {time.time() - 600}\n"
    )
    code, out, _ = run("health", "--metrics", f"{base}/metrics")
    assert code == 1
    assert "the host is not answering" in out
    code, out, _ = run("health", "--metrics", f"{base}/metrics", "--max-age", "3600")
    assert code == 0, out


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("not-plugwire", "[2100 OBSERVABILITY]"),
        ("missing", "[1301 CONNECT_FAILED]"),
    ],
)
def test_health_metrics_refuses_an_endpoint_that_is_no_plugwire_host(
    static_server: tuple[Path, str], path: str, message: str
) -> None:
    pytest.importorskip("prometheus_client")
    folder, base = static_server
    (folder / "not-plugwire").write_text("# TYPE up gauge\nup 1\n")
    code, out, err = run("health", "--metrics", f"{base}/{path}")
    assert (code, out) == (2, "")
    assert message in err


def test_health_metrics_unreachable_address_is_a_usage_error() -> None:
    code, _, err = run("health", "--metrics", "http://127.0.0.1:1/metrics", "--timeout", "2")
    assert code == 2
    assert "[1301 CONNECT_FAILED]" in err


# ------------------------------------------------------------------ the entry point


def test_the_installed_entry_point_lists_and_checks_health(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin("a", "3.1.4"))
    env = {**os.environ, "COLUMNS": "60"}
    command = [sys.executable, "-m", "plugwire"]
    done = subprocess.run(
        [*command, "list", "--json", str(config)], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plugins"][0]["version"] == "3.1.4"
    done = subprocess.run(
        [*command, "health", str(config)], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "a: healthy" in done.stdout
