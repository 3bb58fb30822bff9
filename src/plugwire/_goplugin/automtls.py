"""go-plugin's AutoMTLS for a Python plugin: TLS ended by OpenSSL in front of grpcio.

Under AutoMTLS the Go host puts its certificate (PEM, an ECDSA P-521 key) in
PLUGIN_CLIENT_CERT, trusts the certificate the plugin names in its handshake line, and
connects with TLS, authenticating with its own. grpcio's TLS (BoringSSL) cannot take part:
its CertificateRequest does not offer ecdsa_secp521r1_sha512, so the Go host sends no
certificate and the handshake fails (`PEER_DID_NOT_RETURN_A_CERTIFICATE`, measured with
go-plugin 1.0.1's host). Python's `ssl` module is OpenSSL, which does. So the plugin listens
on the address of its handshake line with an `ssl` server of its own event loop, demands the
host's certificate (and only that one), and relays each connection's decrypted bytes to the
gRPC server, which listens in plaintext on a Unix socket inside a new 0700 directory (only the
plugin's user, who can read the process's memory anyway, can reach it). The plugin's own
certificate is made at start (ECDSA P-256, `localhost`, valid for a day) with `cryptography`,
the `goplugin` extra.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import os
import shutil
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import MissingDependencyError
from .handshake import CLIENT_CERT_ENV, MAX_PORT_ENV, MIN_PORT_ENV, Network

__all__ = ["Relay", "make_certificate", "start_relay"]

GOPLUGIN_EXTRA_HINT = "pip install 'plugwire[goplugin]'"
_CERT_LIFETIME = datetime.timedelta(days=1)


def make_certificate() -> tuple[bytes, bytes, bytes]:
    """A new self-signed certificate for `localhost` (server and client auth, ECDSA P-256):
    its PEM, its key's PEM, and its DER.

    Raises:
        MissingDependencyError: `cryptography` is not installed (1011).
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:
        raise MissingDependencyError(
            f"go-plugin AutoMTLS ({CLIENT_CERT_ENV} is set) needs the cryptography package: {GOPLUGIN_EXTRA_HINT}",
            details={"extra": "goplugin"},
        ) from exc
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, cert.public_bytes(serialization.Encoding.DER)


def server_context(client_cert_pem: str, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """An OpenSSL server context: TLS 1.2+, our certificate, HTTP/2 by ALPN, and the host's
    certificate demanded and trusted alone.

    Raises:
        ssl.SSLError: PLUGIN_CLIENT_CERT holds no usable certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_cert_pem)
    context.set_alpn_protocols(["h2"])
    folder = tempfile.mkdtemp(prefix="plugwire-automtls-")  # 0700; `ssl` loads keys from files only
    try:
        cert_file, key_file = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, data in ((cert_file, cert_pem), (key_file, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        context.load_cert_chain(cert_file, key_file)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return context


class _Leg(asyncio.Protocol):
    """One side of a relayed connection: what it receives is written to the other side, and
    a full write buffer on one side pauses reading on the other."""

    def __init__(self, on_made: Callable[[_Leg], None] | None = None) -> None:
        self._on_made = on_made
        self.transport: Any = None
        self.peer: _Leg | None = None
        self.waiting: list[bytes] = []  # received before the peer was connected
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.waiting.append(data)
        else:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()  # HTTP/2 needs no half-close: the peer's buffer is flushed, then closed
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


@dataclass
class Relay:
    """The TLS listener in front of the gRPC server; `listener` is what the handshake line names."""

    listener: Any  # serve._Listener
    server_cert: str  # our certificate as unpadded base64 DER (the handshake line's 6th field)
    server: asyncio.AbstractServer
    connections: set[asyncio.Task[None]]

    async def aclose(self) -> None:
        """Stop accepting, close every relayed connection and wait for them to end."""
        self.server.close()
        for task in self.connections:
            task.cancel()
        if self.connections:
            await asyncio.gather(*self.connections, return_exceptions=True)
        await self.server.wait_closed()
        self.listener.remove()


async def _relay(outer: _Leg, inner_path: str) -> None:
    loop = asyncio.get_running_loop()
    outer.transport.pause_reading()
    inner = _Leg()
    try:
        await loop.create_unix_connection(lambda: inner, inner_path)
    except OSError:
        outer.transport.close()
        return
    inner.peer, outer.peer = outer, inner
    for data in outer.waiting:
        inner.transport.write(data)
    outer.waiting.clear()
    outer.transport.resume_reading()
    try:
        await asyncio.wait((outer.closed, inner.closed), return_when=asyncio.FIRST_COMPLETED)
    finally:
        outer.transport.close()
        inner.transport.close()


async def start_relay(client_cert_pem: str, inner_path: str, network: Network) -> Relay:
    """Listen with TLS where go-plugin's environment says (as `serve._listen` does for
    plaintext) and relay every connection to the gRPC server on `inner_path`.

    Raises:
        MissingDependencyError: `cryptography` is missing (1011).
        ssl.SSLError: PLUGIN_CLIENT_CERT is not a PEM certificate.
        OSError: No listener could be made.
    """
    from .serve import _Listener, _port, owner_only_umask, secure_socket, unix_socket_path

    cert_pem, key_pem, der = make_certificate()
    context = server_context(client_cert_pem, cert_pem, key_pem)
    loop = asyncio.get_running_loop()
    connections: set[asyncio.Task[None]] = set()

    def relay(leg: _Leg) -> None:
        task = loop.create_task(_relay(leg, inner_path))
        connections.add(task)
        task.add_done_callback(connections.discard)

    def accept() -> _Leg:
        return _Leg(relay)

    server: asyncio.AbstractServer
    if network == "unix":
        path, group = unix_socket_path()
        with owner_only_umask():
            server = await loop.create_unix_server(accept, path, ssl=context)
        secure_socket(path, group)
        listener = _Listener("unix", path, path)
    else:
        low, high = _port(MIN_PORT_ENV), _port(MAX_PORT_ENV)
        if low > high:
            raise OSError(f"{MIN_PORT_ENV}={low} is greater than {MAX_PORT_ENV}={high}")
        for port in range(low, high + 1):
            with contextlib.suppress(OSError):
                server = await loop.create_server(accept, "127.0.0.1", port, ssl=context)
                break
        else:
            raise OSError(f"no free TCP port on 127.0.0.1 within {MIN_PORT_ENV}..{MAX_PORT_ENV} ({low}..{high})")
        bound = server.sockets[0].getsockname()[1]
        listener = _Listener("tcp", f"127.0.0.1:{bound}")
    cert = base64.b64encode(der).decode().rstrip("=")
    return Relay(listener, cert, server, connections)
