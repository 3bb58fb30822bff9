"""The gRPC transport: calls a plugin served as `plugwire.v1.Plugin` over one grpc.aio channel.

Targets are grpc's: `host:port`, `unix:/path`, `dns:///name:port` (every address the name
resolves to, balanced round-robin), `ipv4:a:p,b:p`. The channel multiplexes every call over
HTTP/2, so `connection.max_connections` does not apply. grpc's own retries are off: the
retry policy is the only one. Every grpc failure is translated into a `PluginError`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, TypeGuard

from .._auth import CredentialProvider
from .._config import ConnectionConfig, HealthCheckConfig
from .._errors import (
    AuthenticationError,
    ErrorCode,
    PluginError,
    ProtocolError,
    RequestSent,
    RequestValidationError,
    TransportError,
)
from .._models import HealthStatus, PluginInfo, Status, Transport
from .._proto import CONTENT_TYPES, load
from .._tasks import TaskOwner
from .._tls import TLSConfig
from .base import BaseTransport, Call, attempt_timed_out
from .grpc_status import error_from_rpc, peer_reported

__all__ = ["GrpcTransport", "channel_options"]

_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_options(connection: ConnectionConfig, tls: TLSConfig | None = None) -> list[tuple[str, Any]]:
    """grpc channel arguments for a plugin's `connection` settings.

    `connection_timeout` bounds each connection attempt (and `start()`); `idle_timeout`
    lets an unused channel drop its connections; `keep_alive` pings a busy connection so
    a dead peer is noticed; `max_message_size` limits both directions.
    """
    options: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 0),
        # A channel of its own connections: restart() must not inherit another channel's
        # backoff state from grpc's process-wide subchannel pool.
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.max_send_message_length", connection.max_message_size),
        ("grpc.max_receive_message_length", connection.max_message_size),
        ("grpc.min_reconnect_backoff_ms", max(int(connection.connection_timeout * 1000), 1)),
        # Reconnect quickly after a plugin restarts: the retry policy, not grpc, paces callers.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        ("grpc.client_idle_timeout_ms", max(int(connection.idle_timeout * 1000), 1_000)),
    ]
    if connection.keep_alive:
        options += [
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 0),
        ]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options


class GrpcTransport(BaseTransport):
    """A connection to one gRPC plugin (or a replicated set of them behind one name).

    Args:
        plugin: The registered plugin name (for errors).
        target: A grpc target string.
        connection: Channel settings (timeouts, message size, keepalive, idle).
        health_check: Its `timeout` bounds each `health()` call.
        tls: Use TLS (mTLS when it names a client certificate); None for plaintext.
        credentials: Adds per-call metadata (api-key, bearer, basic, custom).
    """

    kind = Transport.GRPC
    # Each call carries `Call.timeout` as its gRPC deadline, which grpc enforces on both ends
    # (the plugin sees the cancellation): the timeout policy need not open a scope per call.
    enforces_timeout = True

    def __init__(
        self,
        plugin: str,
        target: str,
        *,
        connection: ConnectionConfig | None = None,
        health_check: HealthCheckConfig | None = None,
        tls: TLSConfig | None = None,
        credentials: CredentialProvider | None = None,
    ) -> None:
        self._mods = load()
        self.plugin = plugin
        self.target = target
        self.connection = connection or ConnectionConfig()
        self.health_check = health_check or HealthCheckConfig()
        self.tls = tls
        self._credentials = credentials
        self._channel: Any = None
        self._stub: Any = None
        self._execute_request: Any = None
        self._closed = False
        # Channels replaced by `restart()` close in the background, given `request_timeout`.
        self._tasks = TaskOwner(f"plugwire-grpc-{plugin}", close_timeout=(self.connection.request_timeout or 0.0) + 5.0)

    @classmethod
    def over(
        cls,
        plugin: str,
        channel: Any,
        *,
        connection: ConnectionConfig | None = None,
        health_check: HealthCheckConfig | None = None,
    ) -> GrpcTransport:
        """The call path of this transport over a channel its caller owns and closes (the
        go-plugin transport's channel to its plugin's socket): `call`, `health` and `info`;
        no `start`, `restart` or `aclose`."""
        transport = cls(plugin, "", connection=connection, health_check=health_check)
        transport._channel = channel
        transport._stub = transport._mods.pb2_grpc.PluginStub(channel)
        transport._execute_request = transport._mods.pb2.ExecuteRequest
        return transport

    async def info(self) -> PluginInfo:
        """What the plugin says about itself (`Info`), within `connection_timeout`."""
        return await self._info(self._stub)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> PluginInfo:
        """Open the channel and ask the plugin for its info, within `connection_timeout`.

        A start that fails closes the channel it opened, so the next `start()` (the health
        monitor's, for a plugin registered while unreachable) connects afresh.

        Raises:
            TransportError: The plugin cannot be reached (1301) or the TLS setup failed (1306-1310).
            AuthenticationError: The plugin refused the credentials (1100-1199).
        """
        if self._channel is not None:
            return await self._info(self._stub)
        self._channel, self._stub = self._connect()
        self._execute_request = self._mods.pb2.ExecuteRequest
        self._closed = False
        try:
            return await self._info(self._stub)
        except BaseException:
            channel, self._channel, self._stub = self._channel, None, None
            if channel is not None:
                await channel.close()
            raise

    async def _info(self, stub: Any) -> PluginInfo:
        reply = await self._unary(stub.Info, self._mods.pb2.InfoRequest(), self.connection.connection_timeout or None)
        return PluginInfo(
            name=reply.name,
            version=reply.version or "0.0.0",
            description=reply.description,
            author=reply.author,
            capabilities=tuple(reply.capabilities),
            metadata=dict(reply.metadata),
        )

    def _connect(self) -> tuple[Any, Any]:
        """A new channel to the target and a stub on it."""
        aio = self._mods.aio
        options = channel_options(self.connection, self.tls)
        if self.tls is None:
            channel = aio.insecure_channel(self.target, options=options)
        else:
            roots, key, cert = self.tls.load()
            if self.target.startswith(("unix:", "unix-abstract:")) and not self.tls.server_name:
                # A socket path is no host name: expect the certificate of "localhost".
                options.append(("grpc.ssl_target_name_override", "localhost"))
            creds = self._mods.grpc.ssl_channel_credentials(roots, key, cert)
            channel = aio.secure_channel(self.target, creds, options=options)
        return channel, self._mods.pb2_grpc.PluginStub(channel)

    async def aclose(self) -> None:
        """Close the channel; calls still in flight fail with a `TransportError`."""
        channel, self._channel, self._stub = self._channel, None, None
        self._closed = True
        if channel is not None:
            await channel.close()
        await self._tasks.aclose()  # replaced channels still closing

    async def restart(self) -> PluginInfo:
        """Connect afresh (skipping grpc's reconnect backoff) and move calls to the new channel.

        The new channel must answer `Info` first; then it takes the calls, and the old one is
        closed in the background, its in-flight calls given `request_timeout` to finish. If the
        new channel fails, the old one stays and the error is raised.
        """
        channel, stub = self._connect()
        try:
            info = await self._info(stub)
        except BaseException:
            await channel.close()
            raise
        old, self._channel, self._stub = self._channel, channel, stub
        self._execute_request = self._mods.pb2.ExecuteRequest
        self._closed = False
        if old is not None:
            grace = self.connection.request_timeout or None
            if self._tasks.closed:  # restarted after aclose(): nothing waits in the background
                await old.close(grace=grace)
            else:
                self._tasks.start(old.close(grace=grace), name="close the replaced channel", shielded=True)
        return info

    # ---------------------------------------------------------------------- calls
    async def call(self, call: Call) -> bytes:
        """Send one encoded request; the deadline is `call.timeout` and cancelling the caller
        cancels the RPC on the plugin."""
        if self._stub is None:
            raise TransportError(
                "the gRPC transport is closed",
                code=ErrorCode.CONNECTION_LOST,
                plugin=self.plugin,
                retryable=False,
                request_sent=RequestSent.NO,
            )
        ctx = call.context
        merged = {**ctx.metadata, **ctx.headers} if ctx.metadata else ctx.headers
        if ctx.traceparent:
            merged = {**merged, "traceparent": ctx.traceparent}
        request = self._execute_request(
            method="execute",
            payload=call.payload,
            content_type=CONTENT_TYPES[call.codec],
            metadata=merged,
            request_id=ctx.request_id,
            deadline=time.time() + call.timeout if call.timeout else 0.0,
        )
        reply = await self._unary(self._stub.Execute, request, call.timeout, attempt=call)
        payload: bytes = reply.payload
        return payload

    async def health(self) -> HealthStatus:
        """The plugin's own `health()`, bounded by `health_check.timeout`."""
        if self._stub is None:
            raise TransportError("the gRPC transport is closed", code=ErrorCode.CONNECTION_LOST, plugin=self.plugin)
        reply = await self._unary(self._stub.Health, self._mods.pb2.HealthRequest(), self.health_check.timeout or None)
        try:
            status = Status(reply.status)
        except ValueError:
            raise ProtocolError(f"the plugin reported an unknown health status {reply.status!r}") from None
        return HealthStatus(status=status, message=reply.message, metadata=dict(reply.metadata))

    def _translate(self, exc: Any) -> PluginError:
        return error_from_rpc(
            exc.code().name,
            exc.details() or "",
            exc.trailing_metadata() or (),
            plugin=self.plugin,
            tls=self.tls is not None,
            mutual=self.tls is not None and self.tls.mutual,
        )

    def _metadata(self) -> tuple[tuple[str, str], ...] | None:
        if self._credentials is None:
            return None
        try:
            pairs = tuple(self._credentials().items())
        except PluginError:
            raise
        except Exception as exc:  # a user's provider; its message may hold a secret, so only the type
            raise AuthenticationError(
                f"the credential provider failed ({type(exc).__name__})",
                plugin=self.plugin,
                request_sent=RequestSent.NO,
            ) from None
        for key, value in pairs:
            # grpc refuses these deep inside its core; say which key is wrong (never the value).
            if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
                raise AuthenticationError(
                    f"the credential provider returned an invalid metadata key {str(key)[:64]!r} "
                    "(lower-case letters, digits, '-', '_', '.')",
                    code=ErrorCode.AUTH_MALFORMED_CREDENTIALS,
                    plugin=self.plugin,
                    request_sent=RequestSent.NO,
                )
            if not isinstance(value, str) or not _METADATA_VALUE.fullmatch(value):
                raise AuthenticationError(
                    f"the credential provider returned a value for {key!r} that gRPC cannot send "
                    "(printable ASCII only)",
                    code=ErrorCode.AUTH_MALFORMED_CREDENTIALS,
                    plugin=self.plugin,
                    request_sent=RequestSent.NO,
                )
        return pairs

    async def _unary(self, method: Any, request: Any, timeout: float | None, *, attempt: Call | None = None) -> Any:
        metadata = self._metadata()
        if attempt is not None and attempt.context.traceparent:  # also as gRPC call metadata (W3C)
            metadata = (*(metadata or ()), ("traceparent", attempt.context.traceparent))
        aio = self._mods.aio
        try:
            reply = await method(request, timeout=timeout, metadata=metadata)
        except aio.AioRpcError as exc:
            if _own_deadline(attempt, exc):
                raise attempt_timed_out(attempt) from None  # the error the timeout policy would raise
            raise self._translate(exc) from None
        except aio.UsageError as exc:  # the channel was closed before the call could start
            raise TransportError(
                f"the gRPC channel was closed: {exc}",
                code=ErrorCode.CONNECTION_LOST,
                plugin=self.plugin,
                request_sent=RequestSent.NO,
            ) from None
        except PluginError:
            raise
        except (TypeError, ValueError) as exc:  # invalid metadata or payload, refused before sending
            raise RequestValidationError(
                f"the call cannot be sent over gRPC: {type(exc).__name__}: {exc}", plugin=self.plugin
            ) from None
        except Exception as exc:  # anything else grpc raises: never let it reach the user as is
            raise TransportError(
                f"the gRPC call failed: {type(exc).__name__}: {exc}", plugin=self.plugin, retryable=False
            ) from None
        if reply is None:  # grpc.aio answers None when the reply does not parse as the expected message
            raise ProtocolError(
                "the server's reply is not a valid plugwire.v1 message (is it a plugwire plugin?)",
                plugin=self.plugin,
                details={"grpc_status": "INTERNAL"},
                request_sent=RequestSent.MAYBE,  # it answered: whatever the request asked may be done
            )
        return reply


def _own_deadline(attempt: Call | None, exc: Any) -> TypeGuard[Call]:
    """Whether a failed RPC ran out of the deadline we set from `attempt.timeout` (a plugin
    that reports a timeout itself sends plugwire trailers)."""
    return (
        attempt is not None
        and bool(attempt.timeout)
        and exc.code().name == "DEADLINE_EXCEEDED"
        and not peer_reported(exc.trailing_metadata())
    )
