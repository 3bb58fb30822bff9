"""The transport interface: how the manager hands one encoded call to a plugin."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Any, ClassVar

import msgspec

from .._codec import CodecName
from .._errors import PluginTimeoutError, RequestSent
from .._models import ExecutionContext, HealthStatus, PluginInfo, Transport

__all__ = ["BaseTransport", "Call", "attempt_timed_out"]


class Call(msgspec.Struct, frozen=True):
    """One call on its way to a plugin (immutable: derive a changed copy with
    `msgspec.structs.replace(call, timeout=...)`).

    Attributes:
        plugin: The registered plugin name.
        payload: The encoded request (`bytes`), or the request object itself for a
            transport whose `wants_bytes` is false (in-process with the codec off).
        context: The call's `ExecutionContext` (request id always set).
        codec: How `payload` is encoded.
        timeout: Seconds this attempt may take: the manager starts a call with its context's
            `timeout`, else the plugin's `connection.request_timeout`; the timeout policy
            sets it on every attempt (cut to the call's overall deadline). Transports pass it
            on to the plugin as its deadline.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        deadline: When the whole call must be over, on the pipeline's clock (its
            `monotonic()`), from `ExecutionContext.total_timeout`; None means no overall limit.
    """

    plugin: str
    payload: Any
    context: ExecutionContext
    codec: CodecName = "msgpack"
    timeout: float | None = None
    attempt: int = 1
    deadline: float | None = None


def attempt_timed_out(call: Call, request_sent: RequestSent = RequestSent.MAYBE) -> PluginTimeoutError:
    """The error of an attempt that got no answer within `call.timeout` seconds (1204).

    Args:
        call: The attempt.
        request_sent: `MAYBE` once the request was handed to the connection (the plugin may
            be working on it); `NO` when time ran out before it was (waiting for a process
            or for the plugin to read earlier writes), which a retry may repeat safely.
    """
    return PluginTimeoutError(
        f"no answer within {call.timeout:g}s"
        if request_sent is RequestSent.MAYBE
        else f"the request could not be sent within {call.timeout:g}s",
        plugin=call.plugin,
        details={"timeout": call.timeout, "attempt": call.attempt},
        request_sent=request_sent,
    )


class BaseTransport(abc.ABC):
    """A connection to one plugin: start it, call it, check it, close it.

    Implementations translate every lower-level failure into a `PluginError` at this
    boundary; nothing from grpc, OSError or msgspec reaches the caller untranslated.
    """

    kind: ClassVar[Transport]
    #: False when `call` takes and returns Python objects instead of encoded bytes.
    wants_bytes: ClassVar[bool] = True
    #: False when `restart()` cannot recover the plugin (an object in the host's own process);
    #: the health monitor then takes a failing plugin offline instead of restarting it.
    restartable: ClassVar[bool] = True
    #: True when `call` itself bounds each attempt by `Call.timeout` on the event loop's clock:
    #: past it, the call fails with `attempt_timed_out(call)` (1204) and the plugin is told to
    #: stop (it says whether the request had been sent: `request_sent`). The timeout policy
    #: then sets no timer of its own (a timer per call is a measurable share of a fast
    #: transport's round trip).
    enforces_timeout: ClassVar[bool] = False

    @abc.abstractmethod
    async def start(self) -> PluginInfo:
        """Connect to (or spawn) the plugin and return what it says about itself."""

    @abc.abstractmethod
    async def call(self, call: Call) -> Any:
        """Deliver one call and return the plugin's encoded response.

        Every `PluginError` it raises says whether the request may have reached the plugin
        (`request_sent`: `NO` before it was handed to the connection, `MAYBE` after, `YES`
        for the plugin's own error answer); the retry policy repeats a `MAYBE` failure only
        for an idempotent call.
        """

    @abc.abstractmethod
    async def health(self) -> HealthStatus:
        """Ask the plugin for its health."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop the plugin or disconnect from it; safe to call more than once."""

    async def restart(self) -> PluginInfo:
        """Recover a failing plugin: by default close it and start it again.

        Transports with cheaper or safer recovery (a supervisor, a reconnect) override it.
        """
        await self.aclose()
        return await self.start()

    async def __aenter__(self) -> PluginInfo:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
