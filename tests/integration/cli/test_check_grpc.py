"""`plugwire check --grpc TARGET`: the conformance checks against a gRPC plugin process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from plugwire._cli._app import cli
from tests.support.grpc_certs import make_cert_set
from tests.support.grpc_support import short_socket_path
from tests.support.procguard import PLUGINS, plugin_env


@contextlib.contextmanager
def served(script: str, address: str, *args: str) -> Iterator[str]:
    """tests/support/plugins/<script> serving on `address` until the test ends."""
    proc = subprocess.Popen(
        [sys.executable, str(PLUGINS / script), address, *args],
        stderr=subprocess.PIPE,
        env={**os.environ, **plugin_env()},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"over gRPC on" in line:
                break
        else:
            raise AssertionError("the gRPC plugin exited before serving")
        yield address
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def grpc_plugin(tmp_path: Path) -> Iterator[str]:
    """tests/support/plugins/grpc_echo.py served with `plugwire.serve(transport="grpc")` on a unix socket."""
    with served("grpc_echo.py", f"unix:{short_socket_path(tmp_path)}", "serve") as address:
        yield address


def test_a_conforming_grpc_plugin_exits_0_with_every_finding_in_json(grpc_plugin: str) -> None:
    result = CliRunner().invoke(cli, ["check", "--grpc", grpc_plugin, "--json", "--data", '{"text": "hi"}'])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True
    assert data["target"] == {"grpc": grpc_plugin}
    checks = {f["check"]: f for f in data["findings"]}
    assert set(checks) == {
        "info",
        "info-name",
        "call",
        "call-json",
        "concurrent-calls",
        "health",
        "grpc-health",
        "reflection",
    }
    assert all(f["passed"] and f["code"] is None for f in checks.values())
    assert "plugwire.v1.Plugin" in checks["reflection"]["detail"]


def test_the_installed_command_prints_a_table_that_fits_a_narrow_terminal(grpc_plugin: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "plugwire", "check", "--grpc", grpc_plugin],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "60", **plugin_env()},
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "result: conforms" in run.stdout
    assert "reflection" in run.stdout
    assert max(len(line) for line in run.stdout.splitlines()) <= 60
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "target",
    ["unix:/nonexistent/plugwire-check.sock", "127.0.0.1:1"],
    ids=["missing-socket", "refused-port"],
)
def test_an_unreachable_target_exits_2_with_the_code_the_host_raises_on_connect(target: str) -> None:
    result = CliRunner().invoke(cli, ["check", "--grpc", target, "--timeout", "2"])
    assert result.exit_code == 2
    assert result.output.startswith("plugwire: [1301 CONNECT_FAILED] cannot connect to the plugin")
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either a plugin COMMAND or --grpc TARGET"),
        (["--grpc", "127.0.0.1:1", "--", sys.executable], "give either a plugin COMMAND or --grpc TARGET"),
        (["--grpc", "127.0.0.1:1", "--timeout", "-1"], "is not in the range x>0"),
        (["--grpc", "127.0.0.1:1", "--timeout", "0"], "is not in the range x>0"),
        (["--grpc", "127.0.0.1:1", "--data", "{nope"], "is not JSON"),
        (["--grpc", "127.0.0.1:1", "--data", "@/nonexistent/request.json"], "cannot read"),
        (["--grpc", "127.0.0.1:1", "--env", "A=1"], "--env is for a plugin COMMAND"),
        (["--ca", "ca.pem", "--", sys.executable], "need --grpc"),
        (["--grpc", "127.0.0.1:1", "--cert", "client.pem"], "[1003 CONFIG_INVALID_VALUE] tls: cert_file and key_file"),
        (["--grpc", "127.0.0.1:1", "--api-key-env", "K", "--token-env", "T"], "choose one"),
    ],
)
def test_bad_arguments_exit_2_with_one_readable_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["check", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_missing_ca_file_is_a_coded_setup_error(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    result = CliRunner().invoke(cli, ["check", "--grpc", "127.0.0.1:1", "--ca", str(missing)])
    assert result.exit_code == 2
    assert result.output.startswith("plugwire: [")
    assert str(missing) in result.output


def test_help_names_the_grpc_and_tls_options() -> None:
    result = CliRunner().invoke(cli, ["check", "-h"])
    assert result.exit_code == 0
    for option in ("--grpc", "--ca", "--cert", "--key", "--json", "--data"):
        assert option in result.output


def test_mutual_tls_options_reach_the_host_transport(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_cert_set(tmp_path / "certs")
    address = f"unix:{short_socket_path(tmp_path)}"
    server = (str(certs.server.cert), str(certs.server.key), str(certs.ca.cert_file))
    with served("grpc_tls_echo.py", address, *server):
        client = ["--cert", str(certs.client.cert), "--key", str(certs.client.key)]
        ok = CliRunner().invoke(cli, ["check", "--grpc", address, "--ca", str(certs.ca.cert_file), *client, "--json"])
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.output)["ok"] is True
        # Without a client certificate nothing is checked: the code a host raises connecting.
        refused = CliRunner().invoke(cli, ["check", "--grpc", address, "--ca", str(certs.ca.cert_file)])
        assert refused.exit_code == 2
        # The host's own classification: the server's "certificate required" alert (1105), or,
        # when the server closed the connection before grpcio read that alert (TLS 1.3 sends
        # the client's finished first), a reset connection (1301).
        assert refused.output.startswith(
            ("plugwire: [1105 AUTH_CLIENT_CERT_REQUIRED]", "plugwire: [1301 CONNECT_FAILED]")
        )
        untrusted = CliRunner().invoke(
            cli, ["check", "--grpc", address, "--ca", str(certs.other_ca.cert_file), *client]
        )
        assert untrusted.exit_code == 2
        assert untrusted.output.startswith("plugwire: [1307 TLS_CERT_UNTRUSTED]")
