"""`plugwire.serve(plugin)`: run a plugin as a process that a plugwire host talks to.

Imports only layers 0-2, so a plugin process loads no host code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from .._codec import CODECS, CodecName
from .._errors import ConfigError, ErrorCode, MissingDependencyError
from .._protocol import COOKIE_ENV, DEFAULT_MAX_FRAME, MAGIC_COOKIE, NOT_A_PLUGIN_HOST_MESSAGE
from .adapter import PluginAdapter
from .logs import install_logging
from .stdio import AuthVerifier, StdioServer
from .tracing import plugin_tracing

__all__ = ["ServeSettings", "serve"]

# Transports `serve()` knows. Each has a `_serve_<name>(adapter, settings) -> exit status`.
TRANSPORTS = ("stdio", "grpc", "go-plugin")

# Event loops a stdio plugin can run on; the environment variable lets the host choose.
LOOPS = ("asyncio", "auto", "uvloop")
LOOP_ENV = "PLUGWIRE_LOOP"
STDIO_GRACE = 10.0
"""Seconds a stdio plugin's in-flight calls get on SIGTERM or end of input (a gRPC plugin's:
`grpc_server.DEFAULT_GRACE`)."""


def serve(
    plugin: Any,
    *,
    transport: str = "stdio",
    request_type: Any = None,
    response_type: Any = None,
    max_concurrency: int = 64,
    max_threads: int | None = None,
    grace: float | None = None,
    auth: AuthVerifier | Any = None,
    address: str = "",
    tls: Any = None,
    max_frame: int = DEFAULT_MAX_FRAME,
    codecs: tuple[CodecName, ...] = CODECS,
    log_level: str | int = "INFO",
    loop: str = "asyncio",
    handshake: Any = None,
) -> NoReturn:
    """Serve `plugin` to the plugwire host that started this process, then exit.

    The protocol runs on private duplicates of stdin and stdout; fd 1 is pointed at stderr
    (so `print()` becomes a log line) and fd 0 at /dev/null. Logging goes to stderr as
    JSON lines, which the host turns into records under `plugwire.plugin.<name>`.
    With ``PLUGWIRE_TRACING=1`` in the environment (a tracing host sets it), each call runs
    in a span continuing the host's trace, and log lines carry its ids (`_sdk/tracing.py`,
    docs/observability.md).

    Args:
        plugin: A `plugwire.Plugin` (its methods may be `async def` or plain `def`; plain
            ones run in a bounded thread pool, each call in a copy of the caller's
            `contextvars` context).
        transport: "stdio" (started by a host as a subprocess), "grpc" (a gRPC service
            on `address`; needs the `grpc` extra, see `plugwire.sdk.serve_grpc`) or
            "go-plugin" (started by a HashiCorp go-plugin host, served as `plugwire.v1.Plugin`;
            needs `handshake` and the `goplugin` extra, docs/go-plugin.md).
        request_type: Overrides the request type read from the plugin's annotations.
        response_type: Overrides the response type read from the plugin's annotations.
        max_concurrency: Calls run at once; further calls wait (the host is pushed back).
        max_threads: The most worker threads for plain `def` methods (default
            `min(32, CPUs + 4)`, the bound of `concurrent.futures.ThreadPoolExecutor`); 1 for
            calls that compute in pure Python (docs/subprocess.md, "Plain `def` plugins").
        grace: Seconds in-flight calls get to finish on shutdown, SIGTERM or end of input
            (default 10 for "stdio", 5 for "grpc": docs/grpc.md).
        auth: Checks the host's credentials and raises `AuthenticationError` to refuse it
            (the host then gets that error): a callable taking the credential map (`hello.auth`
            on stdio, metadata on gRPC), or an `AuthConfig` (api-key, bearer, basic; compared
            in constant time).
        address: Where a "grpc" plugin listens: `host:port` or `unix:/path`.
        tls: A `ServerTLSConfig` for a "grpc" plugin (TLS, or mTLS with client certificates).
        max_frame: The largest frame accepted from the host, in bytes.
        codecs: The codecs this plugin accepts.
        log_level: Level of the stderr JSON-lines log handler.
        handshake: For "go-plugin": the host's `HandshakeConfig` (app protocol version and
            magic cookie).
        loop: The event loop of a "stdio" plugin: "asyncio" (the standard one), "uvloop"
            (needs the `uvloop` extra) or "auto" (uvloop when it is installed). The
            `PLUGWIRE_LOOP` environment variable, when set, takes precedence, so a host can
            choose for the plugins it starts.

    Raises:
        ConfigError: An unknown `transport` (1007) or a bad setting (1003), such as an
            unknown `loop`, or "go-plugin" without a `HandshakeConfig`.
        MissingDependencyError: The "uvloop" loop was asked for but uvloop is not installed (1011).
        SystemExit: Always, at the end: 0 after a clean stop, 1 when started by hand
            (no magic cookie) or refused by the handshake.
    """
    if transport not in TRANSPORTS:
        raise ConfigError(
            f"serve: unknown transport {transport!r}; available: {', '.join(TRANSPORTS)}",
            code=ErrorCode.CONFIG_UNKNOWN_TRANSPORT,
        )
    if (
        max_concurrency < 1
        or (max_threads is not None and max_threads < 1)
        or (grace is not None and grace < 0)
        or max_frame < 64
    ):
        raise ConfigError(
            "serve: max_concurrency and max_threads must be >= 1, grace >= 0 and max_frame >= 64",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    if auth is not None and not callable(auth):  # an AuthConfig: built here, only when given
        from .._auth import credential_verifier

        auth = credential_verifier(auth)
    if transport == "go-plugin":
        types = {"request_type": request_type, "response_type": response_type}
        _exit(
            _serve_goplugin(
                plugin, handshake, auth=auth, grace=grace, types=types, max_threads=max_threads, log_level=log_level
            )
        )
    loop_factory = loop_factory_for(os.environ.get(LOOP_ENV) or loop)
    if transport == "grpc":
        types = {"request_type": request_type, "response_type": response_type}
        _exit(_serve_grpc(plugin, address, tls=tls, auth=auth, grace=grace, types=types, max_threads=max_threads))
    grace = STDIO_GRACE if grace is None else grace
    adapter = PluginAdapter(plugin, request_type=request_type, response_type=response_type, max_threads=max_threads)
    settings = ServeSettings(
        max_concurrency=max_concurrency,
        grace=grace,
        auth=auth,
        max_frame=max_frame,
        codecs=codecs,
        log_level=log_level,
        loop_factory=loop_factory,
    )
    _exit(_serve_stdio(adapter, settings))


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """The transport-independent settings of `serve()`, handed to each server."""

    max_concurrency: int
    grace: float
    auth: AuthVerifier | None
    max_frame: int
    codecs: tuple[CodecName, ...]
    log_level: str | int
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None


def loop_factory_for(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event-loop factory for a `loop` choice; None means asyncio's default loop.

    Raises:
        ConfigError: `name` is not one of `LOOPS` (1003).
        MissingDependencyError: "uvloop" was asked for and is not installed (1011).
    """
    if name not in LOOPS:
        raise ConfigError(
            f"serve: unknown loop {name!r}; available: {', '.join(LOOPS)}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        if name == "auto":
            return None
        raise MissingDependencyError(
            "serve: loop='uvloop' needs uvloop: pip install 'plugwire[uvloop]'",
        ) from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _serve_stdio(adapter: PluginAdapter, settings: ServeSettings) -> int:
    """Serve on stdin/stdout for the host that started this process; returns the exit status."""
    if os.environ.get(COOKIE_ENV) != MAGIC_COOKIE:
        sys.stderr.write(NOT_A_PLUGIN_HOST_MESSAGE + "\n")
        sys.stderr.flush()
        return 1
    install_logging(settings.log_level)
    tracing = plugin_tracing(lambda: adapter.info().name)
    in_fd, out_fd = _take_protocol_fds()
    server_kwargs: dict[str, Any] = {
        "tracing": tracing,
        "max_concurrency": settings.max_concurrency,
        "grace": settings.grace,
        "auth": settings.auth,
        "max_frame": settings.max_frame,
        "codecs": settings.codecs,
    }
    try:
        with asyncio.Runner(loop_factory=settings.loop_factory) as runner:
            return runner.run(_run(adapter, in_fd, out_fd, server_kwargs))
    finally:
        if tracing is not None:
            tracing.shutdown()  # the last spans, bounded: a dead collector never holds the exit


def _serve_grpc(
    plugin: Any,
    address: str,
    *,
    tls: Any,
    auth: Any,
    grace: float | None,
    types: dict[str, Any],
    max_threads: int | None,
) -> int:
    """Serve over gRPC until SIGTERM or SIGINT; returns the exit status."""
    if not address:
        raise ConfigError("serve: a grpc plugin needs an address", code=ErrorCode.CONFIG_MISSING_ENDPOINT)
    from .grpc_server import DEFAULT_GRACE, serve_grpc  # the grpc extra is only needed here

    serve_grpc(
        plugin,
        address=address,
        tls=tls,
        auth=auth,
        grace=DEFAULT_GRACE if grace is None else grace,
        **types,
        max_threads=max_threads,
    )
    return 0


def _serve_goplugin(
    plugin: Any,
    handshake: Any,
    *,
    auth: Any,
    grace: float | None,
    types: dict[str, Any],
    max_threads: int | None,
    log_level: str | int,
) -> int:
    """Serve `plugwire.v1.Plugin` to the go-plugin host that started this process; returns
    the exit status."""
    from .._goplugin.handshake import HandshakeConfig
    from .._goplugin.serve import DEFAULT_GRACE, check_options, run

    if not isinstance(handshake, HandshakeConfig):
        raise ConfigError(
            "serve: transport='go-plugin' needs handshake=HandshakeConfig(protocol_version, magic_cookie_key, "
            f"magic_cookie_value) (the Go host's), not {handshake!r}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    options = check_options(handshake, "unix", DEFAULT_GRACE if grace is None else grace, log_level, None)
    from .grpc_server import GrpcPluginServer  # the grpc extra is only needed here

    owner = GrpcPluginServer(plugin, address="", auth=auth, max_threads=max_threads, **types)
    return run(lambda server: None, options, _GoPluginHooks(owner))


class _GoPluginHooks:
    """`plugwire.v1.Plugin` (a `GrpcPluginServer`'s servicer) on the go-plugin transport's server."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def register(self, server: Any) -> None:
        self._owner.attach(server)

    async def stopping(self, grace: float) -> None:
        await self._owner.stop_calls(grace)

    async def stopped(self) -> None:
        await self._owner.close_plugin()


def _take_protocol_fds() -> tuple[int, int]:
    """Move the protocol to private fds; fd 1 becomes stderr and fd 0 /dev/null."""
    sys.stdout.flush()
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # print() lines reach the host's log promptly
        reconfigure(line_buffering=True)
    return in_fd, out_fd


def _same_socket(in_fd: int, out_fd: int) -> bool:
    a, b = os.fstat(in_fd), os.fstat(out_fd)
    return stat.S_ISSOCK(a.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


async def _run(adapter: PluginAdapter, in_fd: int, out_fd: int, kwargs: dict[str, Any]) -> int:
    loop = asyncio.get_running_loop()
    server = StdioServer(adapter, **kwargs)
    transports: list[asyncio.BaseTransport] = []
    if _same_socket(in_fd, out_fd):
        # One socket for both directions (what plugwire hosts give): a socket transport,
        # which reads straight into the server's reused buffer.
        os.close(out_fd)
        sock = socket.socket(fileno=in_fd)
        sock_transport, _ = await loop.connect_accepted_socket(lambda: server, sock)
        transports.append(sock_transport)
    else:
        writer, _ = await loop.connect_write_pipe(
            lambda: _WriteSide(server), os.fdopen(out_fd, "wb", buffering=0, closefd=True)
        )
        server.attach_writer(writer)
        reader, _ = await loop.connect_read_pipe(lambda: server, os.fdopen(in_fd, "rb", buffering=0, closefd=True))
        transports += [reader, writer]
    loop.add_signal_handler(signal.SIGTERM, server.begin_stop, server.grace, "SIGTERM")
    try:
        return await server.done
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        for transport in transports:
            transport.close()
        await asyncio.sleep(0)  # let the transports finish closing


class _WriteSide(asyncio.Protocol):
    """Forwards a write pipe's flow-control and loss events to the server."""

    def __init__(self, server: StdioServer) -> None:
        self.server = server

    def pause_writing(self) -> None:
        self.server.pause_writing()

    def resume_writing(self) -> None:
        self.server.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.server.connection_lost(exc)


def _exit(status: int) -> NoReturn:
    """Exit; if a plain `def` call is still stuck in a worker thread, do not wait for it.

    The plugin's close already stopped the workers and waited for them (`PluginAdapter.close`):
    a worker still alive is in a call that did not end, and would hold the interpreter's exit.
    """
    if any(t.name.startswith("plugwire-plugin") and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # skips the interpreter's normal exit and atexit hooks
    raise SystemExit(status)
