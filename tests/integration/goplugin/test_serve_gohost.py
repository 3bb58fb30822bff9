"""Python plugins served by `plugwire._goplugin.serve` (and `plugwire.serve(...,
transport="go-plugin")`), loaded by real go-plugin 1.0.1 hosts built from Debian's sources:
kvhost (go-plugin's KV example) and pwhost (a host of plugwire.v1.Plugin)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.golang import kv_stubs_dir

HERE = Path(__file__).resolve().parent
PYKV = HERE / "pykv_plugin.py"
PW_PLUGIN = HERE / "pw_plugin.py"
LOGGER = f"kvhost.{Path(sys.executable).name}"  # kvhost logs the plugin under its command's name


def plugin_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(kv_stubs_dir()), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_host(host: Path, *args: str, env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str, int]:
    done = subprocess.run(
        [str(host), *args], check=False, capture_output=True, text=True, timeout=60, env=env or plugin_env()
    )
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr, done.returncode


@pytest.mark.parametrize("servicer", ["def", "async def"])
def test_the_go_host_puts_and_gets_through_a_python_plugin(kvhost_program: Path, servicer: str) -> None:
    env = plugin_env(PYKV_ASYNC="1") if servicer == "async def" else plugin_env()
    ops, log, status = run_host(
        kvhost_program, "put", "k", "hello", "get", "k", "ping", "--", sys.executable, str(PYKV), env=env
    )
    assert status == 0, log
    assert (ops[0]["op"], ops[0]["version"], ops[0]["protocol"], ops[0]["network"]) == ("start", 1, "grpc", "unix")
    assert ops[1:] == [
        {"op": "put", "key": "k"},
        {"op": "get", "key": "k", "value": "hello"},
        {"op": "ping"},
        {"op": "killed"},
    ]
    # A graceful exit after the host's Shutdown: no 2-second wait and kill.
    assert "plugin failed to exit gracefully" not in log
    assert f"plugin process exited: path={sys.executable} pid={ops[0]['pid']}\n" in log
    assert "kvhost: plugin exited" in log


def logged(log: str, level: str, message: str) -> list[str]:
    """The fields of each line the host logged at `level` with `message` from the plugin (the
    host writes a line's fields in its map order, which Go randomises)."""
    head = f"{f'[{level}]':<8}{LOGGER}: {message}: "
    return [line.split(head, 1)[1] for line in log.splitlines() if head in line]


def test_the_go_host_logs_the_python_plugins_records_at_their_levels(kvhost_program: Path) -> None:
    _, log, status = run_host(kvhost_program, "put", "k", "v", "get", "k", "--", sys.executable, str(PYKV))
    assert status == 0, log
    for python, go in [
        ("trace", "TRACE"),
        ("debug", "DEBUG"),
        ("info", "INFO"),
        ("warning", "WARN"),
        ("error", "ERROR"),
        ("critical", "ERROR"),
    ]:
        [fields] = logged(log, go, f"pykv level {python}")
        assert "@module=pykv" in fields.split()
        assert fields.split()[-1].startswith("timestamp=")  # the host parsed our @timestamp
    # extra= fields become the line's fields
    [put] = logged(log, "INFO", "put")
    assert {"@module=pykv", "key=k"} <= set(put.split())
    [get] = logged(log, "DEBUG", "get")
    assert {"@module=pykv", "key=k"} <= set(get.split())
    # A print() before the handshake neither broke it nor vanished: it is a debug log line.
    [printed] = logged(log, "DEBUG", "pykv stray print")
    assert "@module=stdout" in printed.split()


def test_a_python_plugin_can_listen_on_tcp(kvhost_program: Path) -> None:
    ops, log, status = run_host(
        kvhost_program, "put", "k", "v", "get", "k", "--", sys.executable, str(PYKV), env=plugin_env(PYKV_NETWORK="tcp")
    )
    assert status == 0, log
    assert ops[0]["network"] == "tcp"
    assert ops[0]["address"].startswith("127.0.0.1:")
    assert ops[2] == {"op": "get", "key": "k", "value": "v"}


def test_a_python_plugin_killed_with_sigkill_is_reported_by_the_go_host(kvhost_program: Path) -> None:
    with subprocess.Popen(
        [str(kvhost_program), "wait", "get", "k", "--", sys.executable, str(PYKV)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plugin_env(),
    ) as host:
        assert host.stdin is not None
        assert host.stdout is not None
        assert host.stderr is not None
        start = json.loads(host.stdout.readline())
        assert json.loads(host.stdout.readline()) == {"op": "wait", "ready": True}
        os.kill(start["pid"], signal.SIGKILL)
        assert json.loads(host.stdout.readline()) == {"op": "wait", "ended": "plugin-exited"}
        host.stdin.close()
        ops = [json.loads(line) for line in host.stdout]
        log = host.stderr.read()
        host.wait(timeout=60)
    assert ops[0]["op"] == "get"
    assert "Unavailable" in ops[0]["error"]
    assert host.returncode == 1
    assert f'plugin process exited: path={sys.executable} pid={start["pid"]} error="signal: killed"' in log


def test_a_plugin_that_dies_in_a_call_is_reported_with_its_exit_status(kvhost_program: Path) -> None:
    ops, log, status = run_host(
        kvhost_program, "put", "k", "v", "--", sys.executable, str(PYKV), env=plugin_env(PYKV_FAULT="exit-on-put")
    )
    assert status == 1
    assert ops[1]["op"] == "put"
    assert "Unavailable" in ops[1]["error"]
    assert 'error="exit status 7"' in log


def test_the_go_host_refuses_a_python_plugin_with_another_cookie(kvhost_program: Path) -> None:
    ops, log, status = run_host(kvhost_program, "-cookie-value", "wrong", "get", "k", "--", sys.executable, str(PYKV))
    assert status == 3, log
    assert "Unrecognized remote plugin message" in ops[0]["error"]
    assert "This program is a go-plugin plugin" in log  # what the plugin said, in the host's log
    assert "exit status 1" in log


def test_the_go_host_refuses_an_app_version_it_did_not_offer(kvhost_program: Path) -> None:
    ops, log, status = run_host(kvhost_program, "-versions", "2", "get", "k", "--", sys.executable, str(PYKV))
    assert status == 3, log
    assert "Incompatible API version with plugin. Plugin version: 1, Client versions: [2]" in ops[0]["error"]
    # ...and the plugin said why in the log before answering with its own version.
    assert "no common app protocol version" in log


def test_the_plugin_picks_the_version_the_host_offers(kvhost_program: Path) -> None:
    ops, log, status = run_host(
        kvhost_program,
        "-versions",
        "1,2",
        "put",
        "k",
        "v",
        "--",
        sys.executable,
        str(PYKV),
        env=plugin_env(PYKV_VERSION="2"),
    )
    assert status == 0, log
    assert ops[0]["version"] == 2


def test_the_go_host_loads_a_python_plugin_under_automtls(kvhost_program: Path) -> None:
    ops, log, status = run_host(
        kvhost_program, "-automtls", "put", "k", "tls", "get", "k", "ping", "--", sys.executable, str(PYKV)
    )
    assert status == 0, log
    assert "configuring client automatic mTLS" in log
    assert ops[1:] == [
        {"op": "put", "key": "k"},
        {"op": "get", "key": "k", "value": "tls"},
        {"op": "ping"},
        {"op": "killed"},
    ]
    assert "plugin failed to exit gracefully" not in log


def test_a_go_host_loads_any_plugwire_plugin_over_plugwire_v1(pwhost_program: Path) -> None:
    ops, log, status = run_host(
        pwhost_program,
        "info",
        "health",
        "execute",
        '{"name": "go"}',
        "ping",
        "execute",
        '{"name": ""}',
        "--",
        sys.executable,
        str(PW_PLUGIN),
    )
    assert status == 1, log
    assert ops[0] == {"op": "start", "version": 1}
    assert ops[1] == {"op": "info", "name": "greeter", "version": "1.2.3", "capabilities": ["greet"]}
    assert ops[2] == {"op": "health", "status": "degraded", "message": "greeting slowly"}
    assert ops[3]["content_type"] == "application/json"
    assert json.loads(ops[3]["reply"]) == {"text": "hello, go", "request_id": "pwhost-1"}
    assert ops[4] == {"op": "ping"}
    assert ops[5]["code"] == "1205"  # the plugin's RequestValidationError, with its plugwire code
    assert "InvalidArgument" in ops[5]["error"]
    assert ops[6] == {"op": "killed"}
    assert "plugin failed to exit gracefully" not in log
    assert "pwhost: plugin exited" in log
