"""`plugwire.goplugin.serve(register, handshake=...)`: a Python process served as a HashiCorp
go-plugin gRPC plugin, so that a Go host built with go-plugin loads it.

The process checks the magic cookie (started by hand it says so and exits 1), picks the app
protocol version from PLUGIN_PROTOCOL_VERSIONS, listens on a Unix socket it owns (mode 0600,
or 0660 and PLUGIN_UNIX_SOCKET_GROUP's group; in PLUGIN_UNIX_SOCKET_DIR when set) or, when
asked, on 127.0.0.1 within PLUGIN_MIN_PORT..PLUGIN_MAX_PORT, and prints the one handshake line
on stdout (`stdout.py` keeps everything else off it). Beside the application's services it
serves health (`plugin`: SERVING), `GRPCController.Shutdown`, `GRPCBroker` and `GRPCStdio`
(`services.py`); its `logging` records go to stderr as hclog JSON (`hclog.py`). Under AutoMTLS
(PLUGIN_CLIENT_CERT set) the host's TLS is ended by an OpenSSL relay in front of the gRPC
server (`automtls.py`). It stops gracefully on Shutdown and on SIGTERM, ignores SIGINT (the
host handles a Ctrl-C; go-plugin's plugins ignore it too) and never reads stdin (it is the
host's). Layer 2: imports grpc but no host code.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, NoReturn, Protocol

from .._errors import ConfigError, ErrorCode, MissingDependencyError, ProtocolError
from .handshake import (
    CLIENT_CERT_ENV,
    HEALTH_SERVICE,
    MAX_PORT_ENV,
    MIN_PORT_ENV,
    PROTOCOL_VERSIONS_ENV,
    UNIX_SOCKET_DIR_ENV,
    UNIX_SOCKET_GROUP_ENV,
    HandshakeConfig,
    HandshakeLine,
    Network,
    format_handshake_line,
    negotiate_app_version,
)
from .hclog import install_hclog

__all__ = ["DEFAULT_GRACE", "NOT_STARTED_BY_A_HOST", "ServeHooks", "check_options", "run", "serve"]

DEFAULT_GRACE: Final = 1.0
"""Seconds calls in flight get to finish when the plugin stops. A go-plugin host kills a plugin
that has not exited 2 s after its Shutdown call, so a stop must fit well inside that."""

NOT_STARTED_BY_A_HOST: Final = (
    "This program is a go-plugin plugin: a Go host starts it with its magic cookie in the "
    "environment ({key}=...). It is not meant to be run by hand; run the program that loads it."
)

_log = logging.getLogger("plugwire.goplugin")


class ServeHooks(Protocol):
    """What `plugwire.serve(plugin, transport="go-plugin")` adds to the plain go-plugin server."""

    def register(self, server: Any) -> None:
        """Add the services to the grpc.aio server (before it starts)."""

    async def stopping(self, grace: float) -> None:
        """The plugin stops: refuse new calls, give those in flight up to `grace` seconds."""

    async def stopped(self) -> None:
        """The server has stopped: release what the services hold."""


@dataclass(frozen=True, slots=True)
class _Options:
    handshake: HandshakeConfig
    network: Network
    grace: float
    log_level: str | int
    max_workers: int | None


def serve(
    register: Callable[[Any], None],
    *,
    handshake: HandshakeConfig,
    network: Network = "unix",
    grace: float = DEFAULT_GRACE,
    log_level: str | int = "INFO",
    max_workers: int | None = None,
) -> NoReturn:
    """Serve this process as a go-plugin gRPC plugin to the Go host that started it, then exit.

    Args:
        register: Called once with the `grpc.aio.Server` before it starts; adds the
            application's servicers, e.g. `lambda server: kv_pb2_grpc.add_KVServicer_to_server(KV(), server)`.
            Their methods may be `async def` or plain `def` (run in a thread pool).
        handshake: The host's handshake: app protocol version and magic cookie.
        network: `"unix"` (go-plugin's choice everywhere but Windows) or `"tcp"` (127.0.0.1, a
            port within PLUGIN_MIN_PORT..PLUGIN_MAX_PORT, any free port when they are unset or 0).
        grace: Seconds calls in flight get to finish on Shutdown or SIGTERM (keep it under the
            host's 2 s).
        log_level: Level of the hclog JSON handler put on the root logger (a plugin that set up
            logging itself keeps its own handlers).
        max_workers: Threads for plain `def` servicer methods (default: grpc's `min(32, CPUs + 4)`).

    Raises:
        ConfigError: A bad argument: a `handshake` that is not a `HandshakeConfig`, an unknown
            `network`, a negative `grace`, `max_workers` < 1 (1003).
        SystemExit: Always, at the end: 0 after a graceful stop; 1 when started without the
            magic cookie (by hand), when the listener cannot be made, `register` raised or
            grpcio is not installed (each said in an `error` log line).
    """
    options = check_options(handshake, network, grace, log_level, max_workers)
    status = run(register, options)
    if any(t.name.startswith("plugwire-goplugin") and t.is_alive() for t in threading.enumerate()):
        # A plain `def` call outlived the grace: the interpreter's exit would wait for its
        # thread, and the host would kill the plugin 2 s after Shutdown instead.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def check_options(
    handshake: HandshakeConfig, network: str, grace: float, log_level: str | int, max_workers: int | None
) -> _Options:
    """`serve()`'s arguments, checked (its Raises)."""
    if not isinstance(handshake, HandshakeConfig):
        raise ConfigError(
            f"serve: handshake must be a HandshakeConfig, not {type(handshake).__name__}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    if network not in ("unix", "tcp"):
        raise ConfigError(
            f"serve: network must be 'unix' or 'tcp', not {network!r}", code=ErrorCode.CONFIG_INVALID_VALUE
        )
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
        raise ConfigError(f"serve: grace must be a number >= 0, not {grace!r}", code=ErrorCode.CONFIG_INVALID_VALUE)
    bad_workers = isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    if max_workers is not None and bad_workers:
        raise ConfigError(
            f"serve: max_workers must be an integer >= 1, not {max_workers!r}", code=ErrorCode.CONFIG_INVALID_VALUE
        )
    return _Options(handshake, "unix" if network == "unix" else "tcp", float(grace), log_level, max_workers)


def run(register: Callable[[Any], None], options: _Options, hooks: ServeHooks | None = None) -> int:
    """Serve until stopped; returns the exit status (`serve()` without the exit)."""
    handshake = options.handshake
    if not handshake.cookie_matches(os.environ):
        sys.stderr.write(NOT_STARTED_BY_A_HOST.format(key=handshake.magic_cookie_key) + "\n")
        sys.stderr.flush()
        return 1
    from .stdout import StdoutGuard  # after the cookie: a program run by hand keeps its stdout

    guard = StdoutGuard()
    install_hclog(options.log_level)
    try:
        version = negotiate_app_version(os.environ.get(PROTOCOL_VERSIONS_ENV), (handshake.protocol_version,))
    except ProtocolError as exc:
        # go-plugin's servers answer with their own version anyway; the host then refuses it
        # with "Incompatible API version", naming both sides' versions.
        _log.warning("%s; answering with app protocol version %d", exc.message, handshake.protocol_version)
        version = handshake.protocol_version
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return asyncio.run(_serve(register, options, version, guard, hooks))
    finally:
        signal.signal(signal.SIGINT, previous)
        guard.release()


class _Server:
    """The grpc.aio server with go-plugin's services beside the application's."""

    def __init__(self, options: _Options, hooks: ServeHooks | None) -> None:
        from .._proto import load
        from .services import StdioService, add_broker, add_controller
        from .stdout import stdout_to_log

        self.options, self.hooks = options, hooks
        self.stop = asyncio.Event()  # set when the plugin is asked to stop
        self.stopping = asyncio.Event()  # set when it begins to: the long-lived streams end
        self.reason = ""
        self.workers = ThreadPoolExecutor(max_workers=options.max_workers, thread_name_prefix="plugwire-goplugin")
        mods = load()
        self.grpc = mods.aio.server(migration_thread_pool=self.workers, options=[("grpc.so_reuseport", 0)])
        self.health = mods.health.aio.HealthServicer()
        mods.health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        add_controller(self.grpc, lambda: self.stop_for("GRPCController.Shutdown"))
        add_broker(self.grpc, self.stopping)
        self.stdio = StdioService(self.stopping, stdout_to_log)
        self.stdio.add_to(self.grpc)
        self.listener: _Listener | None = None
        self.relay: Any = None

    def stop_for(self, why: str) -> None:
        if not self.stop.is_set():
            self.reason = why
            self.stop.set()

    async def bind(self, register: Callable[[Any], None]) -> HandshakeLine:
        """Add the application's services, listen, and return the line that says where
        (the line's app version is filled in by the caller)."""
        register(self.grpc)
        if self.hooks is not None:
            self.hooks.register(self.grpc)
        client_cert = os.environ.get(CLIENT_CERT_ENV, "")
        if client_cert:  # AutoMTLS: gRPC on a private socket, TLS ended in front of it
            from .automtls import start_relay

            self.listener = _listen(self.grpc, "unix", private=True)
            self.relay = await start_relay(client_cert, self.listener.path, self.options.network)
            public, cert = self.relay.listener, self.relay.server_cert
        else:
            self.listener = public = _listen(self.grpc, self.options.network)
            cert = ""
        return HandshakeLine(app_protocol_version=0, network=public.network, address=public.address, server_cert=cert)

    async def serve(self) -> None:
        """Start serving; health answers SERVING."""
        from .._proto import load

        await self.grpc.start()
        serving = load().health_pb2.HealthCheckResponse.SERVING
        for service in (HEALTH_SERVICE, ""):
            await self.health.set(service, serving)

    async def wait_and_stop(self) -> None:
        """Wait to be stopped; then health NOT_SERVING, the streams end, the application's
        calls get the grace, and the server stops."""
        await self.stop.wait()
        grace = self.options.grace
        _log.debug("stopping (%s), grace %gs", self.reason, grace)
        await self.health.enter_graceful_shutdown()
        self.stopping.set()
        if self.hooks is not None:
            await self.hooks.stopping(grace)
        await self.grpc.stop(grace)
        if self.hooks is not None:
            await self.hooks.stopped()

    async def aclose(self) -> None:
        """Release the relay, the socket and the worker threads (after a stop or a failed start)."""
        await self.grpc.stop(None)
        if self.relay is not None:
            await self.relay.aclose()
        if self.listener is not None:
            self.listener.remove()
        self.workers.shutdown(wait=False, cancel_futures=True)


async def _serve(
    register: Callable[[Any], None], options: _Options, version: int, guard: Any, hooks: ServeHooks | None
) -> int:
    loop = asyncio.get_running_loop()
    try:
        server = _Server(options, hooks)
    except MissingDependencyError as exc:  # grpcio or protobuf is not installed
        _log.error("the plugin cannot start: %s", exc.message)
        return 1
    guard.attach(loop, server.stdio.publish)
    try:
        try:
            where = await server.bind(register)
            await server.serve()
        except Exception as exc:
            _log.error("the plugin cannot start: %s: %s", type(exc).__name__, exc, exc_info=exc)
            return 1
        loop.add_signal_handler(signal.SIGTERM, server.stop_for, "SIGTERM")
        try:
            line = dataclasses.replace(where, app_protocol_version=version)
            guard.write_handshake(format_handshake_line(line))
            _log.debug("serving on %s %s, app protocol version %d", line.network, line.address, version)
            await server.wait_and_stop()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
        return 0
    finally:
        await server.aclose()
        guard.release()


@dataclass(frozen=True, slots=True)
class _Listener:
    """Where the gRPC server listens: `address` is what the handshake line names."""

    network: Network
    address: str
    path: str = ""  # the socket file, for a Unix socket
    folder: str = ""  # the private folder made for it, if any

    def remove(self) -> None:
        """Remove the socket file (and its private folder)."""
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self.folder:
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)


def _listen(server: Any, network: Network, *, private: bool = False) -> _Listener:
    """Bind `server` as go-plugin's environment asks.

    A Unix socket is named like go-plugin's (`plugin` and random digits) in
    PLUGIN_UNIX_SOCKET_DIR (or the temporary directory). It is created under a umask that
    leaves it 0600, then given PLUGIN_UNIX_SOCKET_GROUP's group and mode 0660 when that is set.
    `private` (the plaintext leg behind the AutoMTLS relay) ignores the group and directory:
    the socket goes in a new 0700 directory only this user can enter.
    """
    if network == "tcp" and not private:
        return _listen_tcp(server)
    if private:
        folder = tempfile.mkdtemp(prefix="plugwire-goplugin-")  # mode 0700
        path, group = os.path.join(folder, "grpc.sock"), ""
    else:
        folder, (path, group) = "", unix_socket_path()
    with owner_only_umask():
        bound = server.add_insecure_port(f"unix:{path}")
    if not bound:
        raise OSError(f"cannot listen on the Unix socket {path}")
    secure_socket(path, group)
    return _Listener("unix", path, path, folder)


def unix_socket_path() -> tuple[str, str]:
    """A new socket path in PLUGIN_UNIX_SOCKET_DIR (or the temporary directory), named like
    go-plugin's (`plugin` and random digits), and PLUGIN_UNIX_SOCKET_GROUP (or "")."""
    folder = os.environ.get(UNIX_SOCKET_DIR_ENV) or tempfile.gettempdir()
    path = os.path.join(folder, f"plugin{secrets.randbelow(10**10):010d}")
    return path, os.environ.get(UNIX_SOCKET_GROUP_ENV, "")


@contextlib.contextmanager
def owner_only_umask() -> Iterator[None]:
    """A socket bound inside is born 0600: no moment exists when another user could connect."""
    mask = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(mask)


def secure_socket(path: str, group: str) -> None:
    """Mode 0600, or 0660 and owned by `group` (a name or a number) when one is given."""
    os.chmod(path, 0o600)
    if group:
        os.chown(path, -1, _group_id(group))
        os.chmod(path, 0o660)


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise OSError(f"{UNIX_SOCKET_GROUP_ENV}={group!r}: no such group") from None


def _port(name: str) -> int:
    text = os.environ.get(name, "").strip() or "0"
    if not text.isdigit() or int(text) > 65535:
        raise OSError(f"{name}={text!r} is not a port number")
    return int(text)


def _listen_tcp(server: Any) -> _Listener:
    low, high = _port(MIN_PORT_ENV), _port(MAX_PORT_ENV)
    if low > high:
        raise OSError(f"{MIN_PORT_ENV}={low} is greater than {MAX_PORT_ENV}={high}")
    for port in range(low, high + 1):
        try:
            bound = server.add_insecure_port(f"127.0.0.1:{port}")
        except RuntimeError:
            continue
        if bound:
            return _Listener("tcp", f"127.0.0.1:{bound}")
    raise OSError(f"no free TCP port on 127.0.0.1 within {MIN_PORT_ENV}..{MAX_PORT_ENV} ({low}..{high})")
