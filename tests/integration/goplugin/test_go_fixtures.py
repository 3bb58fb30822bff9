"""The Go toolchain works: Debian's go-plugin builds the KV host and plugin offline, the Go
host loads the Go plugin, and the Python stubs of kv.proto talk to the Go plugin. What the
later interop tests stand on, and what go-plugin 1.0.1's host prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from plugwire._goplugin import HandshakeConfig, parse_handshake_line
from tests.support import golang
from tests.support.golang import build_go_program, kv_stubs, kv_stubs_dir
from tests.support.grpc_certs import make_ca

EXAMPLE = HandshakeConfig(protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello")


def run_host(host: Path, *args: str, env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str, int]:
    done = subprocess.run(
        [str(host), *args], check=False, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr, done.returncode


def test_a_build_is_cached_by_its_sources(kvplugin_program: Path) -> None:
    again = build_go_program("kvplugin")
    assert again == kvplugin_program
    assert os.access(again, os.X_OK)


def test_the_go_host_puts_and_gets_through_the_go_plugin(kvhost_program: Path, kvplugin_program: Path) -> None:
    ops, log, status = run_host(kvhost_program, "put", "k", "hello", "get", "k", "ping", "--", str(kvplugin_program))
    assert status == 0, log
    assert ops[0]["op"] == "start"
    assert (ops[0]["version"], ops[0]["protocol"], ops[0]["network"]) == (1, "grpc", "unix")
    assert ops[1:] == [
        {"op": "put", "key": "k"},
        {"op": "get", "key": "k", "value": "hello"},
        {"op": "ping"},
        {"op": "killed"},
    ]
    # The host's log: the plugin's hclog JSON lines at their levels, then a graceful exit.
    for level in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR"):
        assert f"{f'[{level}]':<8}kvhost.kvplugin: kvplugin level {level.lower()}" in log
    assert "kvhost.kvplugin: kvplugin plain stderr line" in log
    assert "kvhost: plugin exited" in log
    assert "plugin failed to exit gracefully" not in log


def test_a_plugin_that_ignores_shutdown_is_killed_after_the_grace(kvhost_program: Path, kvplugin_program: Path) -> None:
    ops, log, status = run_host(
        kvhost_program, "get", "k", "--", str(kvplugin_program), env={"KVPLUGIN_FAULT": "hang-on-shutdown"}
    )
    assert status == 0, log
    assert [op["op"] for op in ops] == ["start", "get", "killed"]
    assert "[WARN]  kvhost: plugin failed to exit gracefully" in log
    assert 'error="signal: killed"' in log


def test_the_host_reports_a_plugin_killed_while_it_waits(kvhost_program: Path, kvplugin_program: Path) -> None:
    with subprocess.Popen(
        [str(kvhost_program), "wait", "get", "k", "--", str(kvplugin_program)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as host:
        assert host.stdin is not None
        assert host.stdout is not None
        assert host.stderr is not None
        start = json.loads(host.stdout.readline())
        assert json.loads(host.stdout.readline()) == {"op": "wait", "ready": True}
        os.kill(start["pid"], signal.SIGKILL)
        assert json.loads(host.stdout.readline()) == {"op": "wait", "ended": "plugin-exited"}
        host.stdin.close()
        # Read on from the same buffered streams (communicate() would skip what they hold);
        # the host's log is a few kB, far below a pipe's capacity.
        ops = [json.loads(line) for line in host.stdout]
        log = host.stderr.read()
        host.wait(timeout=60)
    assert ops[0]["op"] == "get"
    assert "Unavailable" in ops[0]["error"]
    assert ops[1] == {"op": "killed"}
    assert host.returncode == 1
    assert f'plugin process exited: path={kvplugin_program} pid={start["pid"]} error="signal: killed"' in log


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["-cookie-value", "wrong"], "Unrecognized remote plugin message"),
        (["-versions", "2"], "Incompatible API version with plugin. Plugin version: 1, Client versions: [2]"),
    ],
)
def test_the_go_host_refuses_a_bad_handshake(
    kvhost_program: Path, kvplugin_program: Path, flags: list[str], says: str
) -> None:
    ops, log, status = run_host(kvhost_program, *flags, "get", "k", "--", str(kvplugin_program))
    assert status == 3, log
    assert ops[0]["op"] == "start"
    assert says in ops[0]["error"]


def test_python_stubs_of_kv_proto_talk_to_the_go_plugin(kvplugin_program: Path) -> None:
    kv_pb2, kv_pb2_grpc = kv_stubs()
    env = {**os.environ, EXAMPLE.magic_cookie_key: EXAMPLE.magic_cookie_value, "PLUGIN_PROTOCOL_VERSIONS": "1"}
    with subprocess.Popen(
        [str(kvplugin_program)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    ) as plugin:
        try:
            assert plugin.stdout is not None
            line = parse_handshake_line(plugin.stdout.readline(), app_versions=(EXAMPLE.protocol_version,))
            assert line.network == "unix"
            with grpc.insecure_channel(f"unix:{line.address}") as channel:
                stub = kv_pb2_grpc.KVStub(channel)
                stub.Put(kv_pb2.PutRequest(key="answer", value=b"42"), timeout=30)
                assert stub.Get(kv_pb2.GetRequest(key="answer"), timeout=30).value == b"42"
        finally:
            plugin.terminate()
            plugin.wait(timeout=30)


def test_the_stubs_folder_serves_a_plugin_subprocess() -> None:
    code = "import kv_pb2, kv_pb2_grpc; print(kv_pb2.DESCRIPTOR.services_by_name['KV'].full_name)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(kv_stubs_dir()), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    assert done.stdout.strip() == "proto.KV", done.stderr


def test_a_line_on_stdin_ends_the_hosts_wait(kvhost_program: Path, kvplugin_program: Path) -> None:
    with subprocess.Popen(
        [str(kvhost_program), "wait", "exited", "--", str(kvplugin_program)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as host:
        out, _ = host.communicate("go on\n", timeout=60)
    ops = [json.loads(line) for line in out.splitlines()]
    assert [op["op"] for op in ops] == ["start", "wait", "wait", "exited", "killed"]
    assert ops[2] == {"op": "wait", "ended": "stdin"}
    assert ops[3] == {"op": "exited", "exited": False}
    assert host.returncode == 0


def test_without_go_plugins_sources_a_test_skips_naming_the_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(golang, "GO_PLUGIN_SOURCES", tmp_path / "missing")
    golang._toolchain.cache_clear()
    try:
        assert golang.go_missing_reason() is not None
        with pytest.raises(pytest.skip.Exception) as skipped:
            golang.build_go_program("kvhost")
    finally:
        golang._toolchain.cache_clear()
    assert "go-plugin sources not installed" in str(skipped.value)
    assert golang.INSTALL_HINT in str(skipped.value)


def test_the_go_host_and_plugin_negotiate_automtls(kvhost_program: Path, kvplugin_program: Path) -> None:
    ops, log, status = run_host(kvhost_program, "-automtls", "put", "k", "v", "get", "k", "--", str(kvplugin_program))
    assert status == 0, log
    assert ops[2] == {"op": "get", "key": "k", "value": "v"}
    assert "kvhost.kvplugin: configuring server automatic mTLS" in log


def test_the_go_plugins_automtls_certificate_is_read_from_its_line(kvplugin_program: Path, tmp_path: Path) -> None:
    client = make_ca(tmp_path, "host")  # any certificate will do as the host's
    env = {
        **os.environ,
        EXAMPLE.magic_cookie_key: EXAMPLE.magic_cookie_value,
        "PLUGIN_PROTOCOL_VERSIONS": "1",
        "PLUGIN_CLIENT_CERT": client.cert_file.read_text(),
    }
    with subprocess.Popen(
        [str(kvplugin_program)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    ) as plugin:
        try:
            assert plugin.stdout is not None
            line = parse_handshake_line(plugin.stdout.readline(), app_versions=(1,))
        finally:
            plugin.terminate()
            plugin.wait(timeout=30)
    cert = x509.load_der_x509_certificate(line.server_cert_der())
    key = cert.public_key()
    # go-plugin's AutoMTLS keys are ECDSA on P-521 (a curve grpcio's BoringSSL refuses).
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp521r1"
    assert not line.server_cert.endswith("=")  # unpadded base64, as go-plugin writes it
