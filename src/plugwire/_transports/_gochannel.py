"""`manager.channel(name)`: a go-plugin plugin's managed `grpc.aio` channel for the user's
own stubs.

The object follows the plugin's name: each RPC goes over the channel of the process live at
the moment it starts, whatever restarted it (a crash, a failed health check, `replace`, a
config reload); the multicallable of that process's channel is made once and kept with it.
A call in flight when the process dies fails as gRPC reports it (UNAVAILABLE); a call
started while the supervisor restarts the plugin waits for the new process (no longer than its
own `timeout`, or the plugin's `connection_timeout` without one), and fails with the
supervisor's coded error when the plugin is offline (1602) or the transport is closed (1302).
Closing this object only stops its own use: the processes' channels belong to the transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc  # type: ignore[import-untyped]  # only loaded with the grpc extra
import grpc.aio  # type: ignore[import-untyped]

from .._errors import ErrorCode, TransportError

if TYPE_CHECKING:
    from ._golaunch import GoConnection
    from .goplugin import GoPluginTransport

__all__ = ["PluginChannel"]

_UNARY_RESPONSE = frozenset({"unary_unary", "stream_unary"})


class PluginChannel(grpc.aio.Channel):  # type: ignore[misc]  # grpc has no type stubs
    """A `grpc.aio.Channel` over whichever process of a go-plugin plugin is live.

    Args:
        name: The plugin's registered name.
        resolve: Returns the plugin's transport now (raises `PluginNotFoundError` once it
            is unregistered).
    """

    def __init__(self, name: str, resolve: Callable[[], GoPluginTransport]) -> None:
        self.name = name
        self._resolve = resolve
        self._closed = False

    # -------------------------------------------------------------- plumbing
    def _transport(self) -> GoPluginTransport:
        if self._closed:
            raise TransportError(
                f"the channel of plugin {self.name!r} was closed",
                code=ErrorCode.CONNECTION_LOST,
                plugin=self.name,
            )
        return self._resolve()

    def _live(self) -> GoConnection | None:
        return self._transport().current()

    async def _wait(self, timeout: float | None) -> GoConnection:
        transport = self._transport()
        bound = timeout if timeout is not None else (transport.config.connection.connection_timeout or None)
        return await transport.acquire(bound)

    # ------------------------------------------------------ grpc.aio.Channel
    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Following(self, "unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Following(self, "unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Following(self, "stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Following(self, "stream_stream", method, args, kwargs)

    async def __aenter__(self) -> PluginChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        """Stop using this channel (its calls then raise 1302); the plugin keeps running."""
        self._closed = True

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        """The state of the live process's channel (TRANSIENT_FAILURE while there is none)."""
        if self._closed:
            return grpc.ChannelConnectivity.SHUTDOWN
        conn = self._live()
        if conn is None:
            return grpc.ChannelConnectivity.TRANSIENT_FAILURE
        state: grpc.ChannelConnectivity = conn.channel.get_state(try_to_connect)
        return state

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        conn = await self._wait(None)
        await conn.channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        """Wait until a live process's channel is ready (through a restart, if one runs)."""
        conn = await self._wait(None)
        await conn.channel.channel_ready()


class _Following:
    """A multicallable that sends each RPC over the live process's channel."""

    def __init__(
        self, channel: PluginChannel, kind: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._channel = channel
        self._kind = kind
        self._method = method
        self._args = args
        self._kwargs = kwargs

    def _on(self, conn: GoConnection) -> Any:
        """This method's multicallable on `conn`'s channel (made once per process)."""
        found = conn.callables.get(self)
        if found is None:
            found = conn.callables[self] = getattr(conn.channel, self._kind)(self._method, *self._args, **self._kwargs)
        return found

    def __call__(self, request: Any, *, timeout: float | None = None, **kwargs: Any) -> Any:
        conn = self._channel._live()
        if conn is not None:
            return self._on(conn)(request, timeout=timeout, **kwargs)
        if self._kind in _UNARY_RESPONSE:
            return self._later(request, timeout, kwargs)
        return self._later_stream(request, timeout, kwargs)

    async def _later(self, request: Any, timeout: float | None, kwargs: dict[str, Any]) -> Any:
        conn = await self._channel._wait(timeout)
        return await self._on(conn)(request, timeout=timeout, **kwargs)

    async def _later_stream(self, request: Any, timeout: float | None, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        conn = await self._channel._wait(timeout)
        call = self._on(conn)(request, timeout=timeout, **kwargs)
        async for reply in call:
            yield reply
