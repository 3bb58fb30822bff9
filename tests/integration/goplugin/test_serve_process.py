"""A Python go-plugin plugin process seen from a Python peer: what go-plugin 1.0.1's host cannot
show (GRPCStdio, newer go-plugin's socket settings, the broker stream, a stop with a call in
flight) or what is best checked from outside (the by-hand start, stdout, the socket's mode)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from plugwire._goplugin import HandshakeConfig, HandshakeLine, parse_handshake_line
from tests.support.golang import goplugin_stubs, kv_stubs, kv_stubs_dir

HERE = Path(__file__).resolve().parent
PYKV = HERE / "pykv_plugin.py"
EXAMPLE = HandshakeConfig(protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello")


def plugin_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(kv_stubs_dir()), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        EXAMPLE.magic_cookie_key: EXAMPLE.magic_cookie_value,
        "PLUGIN_PROTOCOL_VERSIONS": "1",
        **extra,
    }


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    line: HandshakeLine
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text()

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"unix:{self.line.address}")

    def rest_of_stdout(self) -> bytes:
        assert self.process.stdout is not None
        return self.process.stdout.read()


@contextmanager
def started(tmp_path: Path, *, stderr_pipe: bool = False, **extra: str) -> Iterator[Running]:
    """The plugin, started as a go-plugin host would; its stderr in a file (or a pipe)."""
    stderr = tmp_path / "plugin-stderr.log"
    with (
        stderr.open("wb") as err,
        subprocess.Popen(
            [sys.executable, str(PYKV)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr_pipe else err,
            env=plugin_env(**extra),
        ) as process,
    ):
        try:
            assert process.stdout is not None
            first = process.stdout.readline().decode()
            assert first, stderr.read_text()
            yield Running(process, parse_handshake_line(first, app_versions=(1,)), stderr)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def test_started_by_hand_the_plugin_says_what_it_is_and_exits_1() -> None:
    env = {k: v for k, v in plugin_env().items() if k != EXAMPLE.magic_cookie_key}
    done = subprocess.run([sys.executable, str(PYKV)], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "This program is a go-plugin plugin" in done.stderr
    assert "BASIC_PLUGIN=" in done.stderr
    assert "Traceback" not in done.stderr


def test_stdout_holds_the_handshake_line_and_nothing_else(tmp_path: Path) -> None:
    with started(tmp_path, PYKV_PRINT="1") as plugin:
        kv_pb2, kv_pb2_grpc = kv_stubs()
        with plugin.channel() as channel:
            kv_pb2_grpc.KVStub(channel).Put(kv_pb2.PutRequest(key="x", value=b"1"), timeout=30)
            controller = goplugin_stubs()[1].GRPCControllerStub(channel)
            controller.Shutdown(goplugin_stubs()[0].Empty(), timeout=30)
        assert plugin.process.wait(timeout=30) == 0
        assert plugin.rest_of_stdout() == b""  # the prints went to the log instead
        log = plugin.log()
    assert '"@message": "pykv stray print", "@timestamp"' in log
    assert '"@message": "stdout put x"' in log


def test_grpc_stdio_streams_the_plugins_stdout(tmp_path: Path) -> None:
    internal_pb2, internal_grpc = goplugin_stubs()
    kv_pb2, kv_pb2_grpc = kv_stubs()
    with started(tmp_path, PYKV_PRINT="1") as plugin, plugin.channel() as channel:
        stream = internal_grpc.GRPCStdioStub(channel).StreamStdio(internal_pb2.Empty(), timeout=30)
        kv = kv_pb2_grpc.KVStub(channel)
        kv.Put(kv_pb2.PutRequest(key="a", value=b"1"), timeout=30)  # the stream is open once a call went through
        kv.Put(kv_pb2.PutRequest(key="b", value=b"2"), timeout=30)
        received = b""
        for data in stream:
            assert data.channel == internal_pb2.StdioData.STDOUT
            received += data.data
            if b"stdout put b\n" in received:
                break
        internal_grpc.GRPCControllerStub(channel).Shutdown(internal_pb2.Empty(), timeout=30)
        assert list(stream) == []  # the stream ends when the plugin stops
        assert plugin.process.wait(timeout=30) == 0
    assert received.endswith(b"stdout put b\n")


def test_the_broker_stream_stays_open_and_quiet_until_the_plugin_stops(tmp_path: Path) -> None:
    internal_pb2, internal_grpc = goplugin_stubs()
    with started(tmp_path) as plugin, plugin.channel() as channel:
        offers = iter([internal_pb2.ConnInfo(service_id=1, network="unix", address="/nowhere")])
        stream = internal_grpc.GRPCBrokerStub(channel).StartStream(offers, timeout=30)
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=30)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        internal_grpc.GRPCControllerStub(channel).Shutdown(internal_pb2.Empty(), timeout=30)
        assert list(stream) == []
        assert stream.code() == grpc.StatusCode.OK
        assert plugin.process.wait(timeout=30) == 0


def test_shutdown_lets_a_call_in_flight_finish(tmp_path: Path) -> None:
    internal_pb2, internal_grpc = goplugin_stubs()
    kv_pb2, kv_pb2_grpc = kv_stubs()
    with (
        started(tmp_path, stderr_pipe=True, PYKV_FAULT="slow-put", PYKV_SLOW="0.5") as plugin,
        plugin.channel() as channel,
    ):
        put = kv_pb2_grpc.KVStub(channel).Put.future(kv_pb2.PutRequest(key="k", value=b"v"), timeout=30)
        assert plugin.process.stderr is not None
        for line in plugin.process.stderr:  # until the call is inside the servicer
            if b'"@message": "put"' in line:
                break
        internal_grpc.GRPCControllerStub(channel).Shutdown(internal_pb2.Empty(), timeout=30)
        assert put.result() == kv_pb2.Empty()
        assert plugin.process.wait(timeout=30) == 0


def test_sigterm_stops_the_plugin_gracefully_and_removes_its_socket(tmp_path: Path) -> None:
    with started(tmp_path) as plugin:
        assert Path(plugin.line.address).exists()
        plugin.process.send_signal(signal.SIGTERM)
        assert plugin.process.wait(timeout=30) == 0
        assert not Path(plugin.line.address).exists()
        assert "stopping (SIGTERM)" in plugin.log()


def test_sigint_is_left_to_the_host(tmp_path: Path) -> None:
    with started(tmp_path) as plugin:
        plugin.process.send_signal(signal.SIGINT)  # a Ctrl-C reaches the whole process group
        kv_pb2, kv_pb2_grpc = kv_stubs()
        with plugin.channel() as channel:
            kv_pb2_grpc.KVStub(channel).Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=30)
        assert plugin.process.poll() is None
        plugin.process.send_signal(signal.SIGTERM)
        assert plugin.process.wait(timeout=30) == 0


def test_the_end_of_stdin_is_not_the_end_of_the_host(tmp_path: Path) -> None:
    # The plugin inherits the Go host's stdin; a host run with </dev/null gives it an empty one.
    with started(tmp_path) as plugin:
        kv_pb2, kv_pb2_grpc = kv_stubs()
        with plugin.channel() as channel:
            kv_pb2_grpc.KVStub(channel).Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=30)
        assert plugin.process.poll() is None


def test_the_socket_is_the_plugins_own(tmp_path: Path) -> None:
    with started(tmp_path) as plugin:
        mode = os.stat(plugin.line.address).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600


def test_the_socket_goes_where_newer_go_plugin_hosts_ask(tmp_path: Path) -> None:
    folder = tmp_path / "sockets"
    folder.mkdir()
    group = os.getgid()
    with started(tmp_path, PLUGIN_UNIX_SOCKET_DIR=str(folder), PLUGIN_UNIX_SOCKET_GROUP=str(group)) as plugin:
        path = Path(plugin.line.address)
        assert path.parent == folder
        assert path.name.startswith("plugin")
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == group


def test_a_group_that_does_not_exist_stops_the_start_with_a_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(PYKV)],
        capture_output=True,
        text=True,
        timeout=60,
        env=plugin_env(PLUGIN_UNIX_SOCKET_GROUP="no-such-group-plugwire"),
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "PLUGIN_UNIX_SOCKET_GROUP='no-such-group-plugwire': no such group" in done.stderr


def test_tcp_ports_come_from_the_hosts_range(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with started(tmp_path, PYKV_NETWORK="tcp", PLUGIN_MIN_PORT=str(port), PLUGIN_MAX_PORT=str(port)) as plugin:
        assert plugin.line.network == "tcp"
        assert plugin.line.address == f"127.0.0.1:{port}"


def p521_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate like the one go-plugin's host makes for AutoMTLS: self-signed, ECDSA P-521."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA512())
    )
    cert_file, key_file = folder / "host.pem", folder / "host.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def tls_first_bytes(context: ssl.SSLContext, address: str, data: bytes) -> bytes | None:
    """Send `data` over TLS and return the first bytes answered: b"" when the server closed
    the connection, None when the handshake or the connection failed."""
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(address)
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(data)
                return tls.recv(64)
        except (ssl.SSLError, ConnectionError):
            return None


# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server answers with its SETTINGS.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


def test_under_automtls_the_plugin_speaks_tls_only_with_the_hosts_certificate(tmp_path: Path) -> None:
    cert_file, key_file = p521_certificate(tmp_path)
    with started(tmp_path, PLUGIN_CLIENT_CERT=cert_file.read_text()) as plugin:
        der = plugin.line.server_cert_der()
        assert der  # the plugin's certificate is in the handshake line
        kv_pb2, kv_pb2_grpc = kv_stubs()
        with plugin.channel() as channel, pytest.raises(grpc.RpcError):  # plaintext: refused
            kv_pb2_grpc.KVStub(channel).Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=5)
        context = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(der))
        context.set_alpn_protocols(["h2"])
        # TLS without the host's certificate: refused (under TLS 1.3 the server's alert comes
        # after the client's handshake, so the refusal is an error or the connection's end).
        assert tls_first_bytes(context, plugin.line.address, H2_PREFACE) in (None, b"")
        context.load_cert_chain(cert_file, key_file)
        with socket.socket(socket.AF_UNIX) as raw:  # with it (P-521, as go-plugin's): accepted, HTTP/2
            raw.connect(plugin.line.address)
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == "h2"
                tls.sendall(H2_PREFACE)
                assert tls.recv(9)[3] == 4  # the gRPC server behind the relay answers with a SETTINGS frame


def test_a_register_that_raises_is_logged_and_the_plugin_exits_1_without_a_line() -> None:
    code = (
        "from plugwire._goplugin import HandshakeConfig\n"
        "from plugwire._goplugin.serve import serve\n"
        "def register(server):\n"
        "    raise RuntimeError('no servicer today')\n"
        "serve(register, handshake=HandshakeConfig(1, 'BASIC_PLUGIN', 'hello'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=plugin_env(), check=False
    )
    assert done.returncode == 1
    assert done.stdout == ""
    error = next(json.loads(line) for line in done.stderr.splitlines() if "cannot start" in line)
    assert error["@level"] == "error"
    assert error["@message"] == "the plugin cannot start: RuntimeError: no servicer today"
    assert "Traceback" in error["exception"]
