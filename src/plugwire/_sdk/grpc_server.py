"""The plugin side of the gRPC transport: serve a `Plugin` as `plugwire.v1.Plugin`.

`GrpcPluginServer` runs inside any event loop (tests start it in theirs); `serve_grpc()`
is the blocking entry point of a plugin process, stopping gracefully on SIGTERM or SIGINT:
the health service turns NOT_SERVING and new calls are refused (1304) while the listener stays
open, in-flight calls get the grace period (`DEFAULT_GRACE`) to finish, calls still running
then end with 1207, and only then does the listener close and the plugin's `close()` run.
Requests go through the same `PluginAdapter` as every other transport. With
``PLUGWIRE_TRACING=1`` each call runs in a span continuing the caller's trace (`tracing.py`):
the ``traceparent`` gRPC call metadata is preferred to the request's metadata map, and the
spans are flushed when the server closes. Server reflection (grpcio-reflection) lists
`plugwire.v1.Plugin`, `grpc.health.v1.Health` and itself, so tools such as grpcurl need no
.proto; it is imported when the server starts, never on the subprocess path.
Imports only layers 0-2 (plus grpc), so a plugin process loads no host code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

from .._auth import CredentialVerifier, credential_verifier
from .._config import AuthConfig
from .._errors import (
    AuthenticationError,
    ConfigError,
    ErrorCode,
    HealthError,
    MissingDependencyError,
    OutcomeUnknownError,
    PluginError,
    PluginNotFoundError,
    PluginTimeoutError,
    ProtocolError,
    RateLimitError,
    RequestValidationError,
    TransportError,
)
from .._models import AuthMethod, ExecutionContext, new_request_id
from .._proto import CODE_TRAILER, CODEC_BY_CONTENT_TYPE, DETAILS_TRAILER, RETRYABLE_TRAILER, load, load_reflection
from .._tls import ServerTLSConfig
from .adapter import PluginAdapter
from .grpc_health import PluginHealthService
from .tracing import PluginTracing, plugin_tracing

__all__ = ["DEFAULT_GRACE", "DEFAULT_MAX_MESSAGE_SIZE", "GrpcPluginServer", "serve_grpc"]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DEFAULT_GRACE = 5.0
"""Seconds in-flight calls get to finish when a gRPC plugin stops (docs/grpc.md)."""
_CLOSE_WAIT = 1.0
"""Seconds calls cancelled at the end of the grace get to send their error, and the server to close."""


class GrpcPluginServer:
    """A gRPC server for one plugin, with the standard health service beside it.

    Args:
        plugin: The plugin object (`info()`, `execute(ctx, request)`, optional `health()`
            and `close()`; `async def` or plain `def`).
        address: `host:port` (port 0 picks a free one), `[::1]:port`, or `unix:/path`.
        tls: Serve TLS (and demand client certificates) instead of plaintext.
        auth: Check each call's credentials: an `AuthConfig` (api-key, bearer, basic; none
            and mtls check nothing in metadata) or a `CredentialVerifier`.
        request_type: Overrides the request type found on the plugin.
        response_type: Overrides the response type found on the plugin.
        grace: Seconds in-flight calls may take to finish when the server stops.
        max_message_size: Largest request or response in bytes.
        max_threads: The most worker threads for plain `def` methods (`plugwire.serve`).
        reflection: Serve gRPC server reflection: None (the default) when grpcio-reflection
            is installed (it is part of the `grpc` extra), True to require it, False never.
            It reveals the service's schema only, which `plugwire proto` publishes anyway.

    Use `async with GrpcPluginServer(...) as server:` or `await server.start()` and
    `await server.aclose()`.
    """

    def __init__(
        self,
        plugin: Any,
        *,
        address: str,
        tls: ServerTLSConfig | None = None,
        auth: AuthConfig | CredentialVerifier | None = None,
        request_type: Any = None,
        response_type: Any = None,
        grace: float = DEFAULT_GRACE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_threads: int | None = None,
        reflection: bool | None = None,
    ) -> None:
        self._mods = load()
        self._reflection = reflection
        self._reflected = False
        self.adapter = PluginAdapter(
            plugin, request_type=request_type, response_type=response_type, max_threads=max_threads
        )
        self._requested = address
        self._tls = tls
        wants_mtls = isinstance(auth, AuthConfig) and AuthMethod(auth.method) is AuthMethod.MTLS
        if wants_mtls and (tls is None or not tls.require_client_cert):
            raise ConfigError(
                "auth: the 'mtls' method needs tls=ServerTLSConfig(..., client_ca_file=..., require_client_cert=True)",
                code=ErrorCode.CONFIG_MISSING_FIELD,
            )
        self._verify = credential_verifier(auth)
        self.grace = grace
        self._max_message_size = max_message_size
        self._server: Any = None
        self._health: PluginHealthService | None = None
        self._stopping = False
        self._running: set[asyncio.Task[Any]] = set()  # handlers inside the plugin's execute
        self._cut_off: set[asyncio.Task[Any]] = set()  # ...and those the end of the grace cancelled
        self.address = address
        #: Tracing from the environment (``PLUGWIRE_TRACING=1``), set up at `start()`.
        self.tracing: PluginTracing | None = None
        #: What runs a call: the adapter's execute, wrapped in the call's span when tracing.
        self.execute: Callable[..., Awaitable[bytes]] = self.adapter.execute

    @property
    def port(self) -> int:
        """The TCP port the server listens on (0 for a unix socket)."""
        if self.address.startswith("unix:"):
            return 0
        return int(self.address.rsplit(":", 1)[1])

    async def start(self) -> str:
        """Bind and start serving; returns the bound address (the real port for port 0).

        Raises:
            TransportError: The address cannot be bound (1301).
            ConfigError: The TLS files cannot be read.
        """
        grpc, aio = self._mods.grpc, self._mods.aio
        options = [
            ("grpc.max_send_message_length", self._max_message_size),
            ("grpc.max_receive_message_length", self._max_message_size),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]
        creds = None
        if self._tls is not None:  # read the files first: a bad path must not leave a server behind
            key, cert, roots = self._tls.load()
            creds = grpc.ssl_server_credentials(
                [(key, cert)], root_certificates=roots, require_client_auth=self._tls.require_client_cert
            )
        server = aio.server(options=options)
        self._mods.pb2_grpc.add_PluginServicer_to_server(_Servicer(self), server)
        self._health = PluginHealthService(self._mods, self.adapter)
        self._mods.health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        self._add_reflection(server)
        try:
            if creds is None:
                port = server.add_insecure_port(self._requested)
            else:
                port = server.add_secure_port(self._requested, creds)
        except RuntimeError as exc:
            await server.stop(None)
            raise TransportError(
                f"cannot listen on {self._requested!r}: {exc}", code=ErrorCode.CONNECT_FAILED, retryable=False
            ) from exc
        if not self._requested.startswith("unix:"):
            self.address = f"{self._requested.rsplit(':', 1)[0]}:{port}"
        await server.start()
        self._server = server
        self._start_tracing()
        return self.address

    def _start_tracing(self) -> None:
        tracing = self.tracing = plugin_tracing(lambda: self.adapter.info().name)
        if tracing is not None:
            self.execute = tracing.wrap(self.adapter.execute, "grpc")

    def attach(self, server: Any) -> None:
        """Serve `plugwire.v1.Plugin` on a `grpc.aio` server run by someone else (the
        go-plugin transport's, which also serves its own health service), before it starts.
        That server's owner stops it: `stop_calls()` first, `close_plugin()` after."""
        self._mods.pb2_grpc.add_PluginServicer_to_server(_Servicer(self), server)
        self._start_tracing()

    async def stop_calls(self, grace: float) -> None:
        """Refuse new calls (1304) and give those in flight `grace` seconds (then 1207)."""
        self._stopping = True
        await self._drain(grace)

    async def close_plugin(self) -> None:
        """Run the plugin's `close()` and flush the last spans."""
        await self.adapter.close()
        if self.tracing is not None:
            await self.tracing.aflush()  # bounded: a dead collector never holds the stop

    def _add_reflection(self, server: Any) -> None:
        """List our services to reflection clients (see `reflection`)."""
        if self._reflection is False:
            return
        try:
            reflection = load_reflection()[0]
        except MissingDependencyError:
            if self._reflection:
                raise
            return
        names = (
            self._mods.pb2.DESCRIPTOR.services_by_name["Plugin"].full_name,
            self._mods.health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        self._reflected = True

    @property
    def reflection(self) -> bool:
        """Whether the server lists its services to reflection clients (known once started)."""
        return self._reflected

    @property
    def stopping(self) -> bool:
        """Whether `aclose()` has begun: new calls are refused (1304), health is NOT_SERVING."""
        return self._stopping

    async def aclose(self, grace: float | None = None) -> None:
        """Stop gracefully, then close the plugin; idempotent.

        The health service turns NOT_SERVING and new calls are refused with 1304 (not run,
        retryable) while the listener stays open; calls in flight get `grace` seconds
        (default: the server's `grace`) to finish; those still running are cancelled and end
        with 1207 (outcome unknown); then the listener closes and the plugin's `close()` runs.
        """
        server, self._server = self._server, None
        if server is None:
            return
        grace = self.grace if grace is None else grace
        health = self._health
        self._stopping = True
        try:
            if health is not None:
                health.begin_stop()
            await self._drain(grace)
            if health is not None:
                await health.aclose(_CLOSE_WAIT)
            await server.stop(_CLOSE_WAIT)
        finally:
            await self.close_plugin()

    async def _drain(self, grace: float) -> None:
        """Wait up to `grace` for the calls in flight; cancel the rest (they answer 1207)."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=grace)
        late = list(self._running)
        if late:
            self._cut_off.update(late)
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=_CLOSE_WAIT)

    async def __aenter__(self) -> GrpcPluginServer:
        await self.start()
        return self

    async def stop(self, grace: float | None = None) -> None:
        """Deprecated spelling of `aclose()` (STYLE.md: one close verb, `aclose`, per async object)."""
        warnings.warn(
            "GrpcPluginServer.stop() is deprecated and will be removed in the next release; use aclose()",
            DeprecationWarning,
            stacklevel=2,
        )
        await self.aclose(grace)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ handlers
    @property
    def running(self) -> set[asyncio.Task[Any]]:
        """The handler tasks now inside the plugin's `execute` (what a stop waits for)."""
        return self._running

    def cut_off(self, task: asyncio.Task[Any]) -> bool:
        """Whether the end of the grace cancelled `task`; if so, let it answer instead."""
        if task not in self._cut_off:
            return False
        self._cut_off.discard(task)
        task.uncancel()
        return True

    @property
    def verifies(self) -> bool:
        """Whether calls must carry credentials."""
        return self._verify is not None

    async def authenticate(self, context: Any) -> None:
        """Run the verifier on the call's metadata; abort with UNAUTHENTICATED on refusal."""
        if self._verify is None:
            return
        metadata: Mapping[str, str] = {
            key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
        }
        try:
            self._verify(metadata)
        except AuthenticationError as exc:
            await self.abort(context, exc)

    async def abort(self, context: Any, error: PluginError) -> NoReturn:
        """End the call with the gRPC status for `error` and its code in trailing metadata."""
        trailers = [(CODE_TRAILER, str(error.code)), (RETRYABLE_TRAILER, "1" if error.retryable else "0")]
        if error.details:
            encoded = json.dumps(error.details, default=str)  # ASCII-only, as metadata must be
            if len(encoded) <= 4096:
                trailers.append((DETAILS_TRAILER, encoded))
        await context.abort(_status_for(self._mods.grpc, error), error.message, trailing_metadata=tuple(trailers))
        raise AssertionError("context.abort() returns only by raising")


class _Servicer:
    """`plugwire.v1.Plugin` on top of a `GrpcPluginServer`'s adapter."""

    def __init__(self, owner: GrpcPluginServer) -> None:
        self._owner = owner
        self._pb2 = owner._mods.pb2
        self._response = owner._mods.pb2.ExecuteResponse

    async def Execute(self, request: Any, context: Any) -> Any:
        owner = self._owner
        if owner.verifies:
            await owner.authenticate(context)
        if owner.stopping:
            await owner.abort(context, _stopping_error())
        codec = CODEC_BY_CONTENT_TYPE.get(request.content_type)
        if codec is None:
            await owner.abort(
                context, RequestValidationError(f"unsupported content type {request.content_type[:64]!r}")
            )
        remaining = context.time_remaining()
        if remaining is None and request.deadline:
            remaining = max(request.deadline - time.time(), 0.0)
        metadata = dict(request.metadata) if request.metadata else {}
        ctx = ExecutionContext(
            request_id=request.request_id or new_request_id(),
            timeout=remaining,
            headers=metadata,
            metadata=metadata,
            traceparent=_call_traceparent(context) or metadata.get("traceparent", ""),
        )
        task = asyncio.current_task()
        assert task is not None  # grpc runs every handler in a task
        running = owner.running
        running.add(task)
        try:
            payload = await owner.execute(ctx, request.payload, codec)
        except PluginError as exc:
            await owner.abort(context, exc)
        except asyncio.CancelledError:
            if not owner.cut_off(task):
                raise  # the client cancelled, or grpc is tearing the call down: not ours to keep
            await owner.abort(
                context, OutcomeUnknownError("the plugin stopped before the call finished (its grace period ran out)")
            )
        finally:
            running.discard(task)
        return self._response(payload=payload, content_type=request.content_type)

    async def Health(self, request: Any, context: Any) -> Any:
        owner = self._owner
        await owner.authenticate(context)
        try:
            status = await owner.adapter.health()
        except Exception as exc:
            await owner.abort(context, HealthError(f"health() failed: {type(exc).__name__}: {exc}"))
        return self._pb2.HealthResponse(status=status.status.value, message=status.message, metadata=status.metadata)

    async def Info(self, request: Any, context: Any) -> Any:
        owner = self._owner
        await owner.authenticate(context)
        try:
            info = owner.adapter.info()
        except Exception as exc:
            await owner.abort(context, ProtocolError(f"info() failed: {type(exc).__name__}: {exc}"))
        return self._pb2.InfoResponse(
            name=info.name,
            version=info.version,
            description=info.description,
            author=info.author,
            capabilities=list(info.capabilities),
            metadata=info.metadata,
        )


def _call_traceparent(context: Any) -> str:
    """The ``traceparent`` gRPC call metadata (W3C trace context), or ""."""
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent" and isinstance(value, str):
            return value
    return ""


def _stopping_error() -> TransportError:
    return TransportError(
        "the plugin is stopping; the call was not run", code=ErrorCode.PLUGIN_STOPPING, retryable=True
    )


def _status_for(grpc: Any, error: PluginError) -> Any:
    """The gRPC status that carries a plugwire error (the exact code rides in the trailers)."""
    status = grpc.StatusCode
    if isinstance(error, AuthenticationError):
        return status.PERMISSION_DENIED if error.code == ErrorCode.AUTH_PERMISSION_DENIED else status.UNAUTHENTICATED
    if isinstance(error, RequestValidationError):
        return status.INVALID_ARGUMENT
    if isinstance(error, PluginTimeoutError):
        return status.DEADLINE_EXCEEDED
    if isinstance(error, TransportError | HealthError):
        return status.UNAVAILABLE
    if isinstance(error, RateLimitError):
        return status.RESOURCE_EXHAUSTED
    if isinstance(error, PluginNotFoundError):
        return status.NOT_FOUND
    if isinstance(error, ConfigError):
        return status.FAILED_PRECONDITION
    if isinstance(error, ProtocolError):
        return status.INTERNAL
    return status.UNKNOWN


def serve_grpc(
    plugin: Any,
    *,
    address: str,
    tls: ServerTLSConfig | None = None,
    auth: AuthConfig | CredentialVerifier | None = None,
    request_type: Any = None,
    response_type: Any = None,
    grace: float = DEFAULT_GRACE,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_threads: int | None = None,
    reflection: bool | None = None,
) -> None:
    """Serve `plugin` over gRPC until SIGTERM or SIGINT, then stop gracefully.

    Prints one line to stderr once listening: ``plugwire: serving 'name' over gRPC on ADDRESS``
    (with the real port when `address` asks for port 0). Arguments are those of
    `GrpcPluginServer`.
    """
    server = GrpcPluginServer(
        plugin,
        address=address,
        tls=tls,
        auth=auth,
        request_type=request_type,
        response_type=response_type,
        grace=grace,
        max_message_size=max_message_size,
        max_threads=max_threads,
        reflection=reflection,
    )
    try:
        asyncio.run(_serve_until_signal(server))
    finally:
        if server.tracing is not None:
            server.tracing.shutdown()  # the last spans, bounded: a dead collector never holds the exit


async def _serve_until_signal(server: GrpcPluginServer) -> None:
    stop = asyncio.Event()
    received: list[signal.Signals] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        bound = await server.start()
        name = server.adapter.info().name
        print(f"plugwire: serving {name!r} over gRPC on {bound}", file=sys.stderr, flush=True)
        await stop.wait()
        # Printed before aclose() runs, but in the same turn of the loop as its first step (the
        # health service turning NOT_SERVING): no probe can be answered in between.
        calls = len(server.running)
        print(
            f"plugwire: stopping {name!r} ({received[0].name}): health NOT_SERVING, "
            f"{calls} call{'' if calls == 1 else 's'} in flight, grace {server.grace:g}s",
            file=sys.stderr,
            flush=True,
        )
    finally:
        await server.aclose()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(RuntimeError):  # the loop may already be closing
                loop.remove_signal_handler(signum)
