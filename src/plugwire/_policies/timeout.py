"""Per-attempt timeout: `ExecutionContext.timeout`, else the plugin's `request_timeout`,
never past the call's overall deadline."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from msgspec.structs import replace

from .._clock import Clock, SystemClock, system_clock
from .._errors import PluginTimeoutError, RequestSent
from .._transports.base import Call, attempt_timed_out
from ._calls import stamp_deadline
from .chain import BindablePolicy, Handler

__all__ = ["TimeoutPolicy"]


class TimeoutPolicy(BindablePolicy):
    """Bounds each attempt; on expiry the transport's call is cancelled (which tells the
    plugin to stop) and the caller gets `PluginTimeoutError` (1204), whose `request_sent`
    says whether the request had left (only then is the outcome unknown).

    The limit of an attempt is the smaller of its own timeout and what is left of the call's
    overall deadline (`ExecutionContext.total_timeout`); an attempt that starts with no time
    left fails at once without reaching the plugin.

    When the transport enforces `Call.timeout` itself (`BaseTransport.enforces_timeout`,
    e.g. the subprocess transport's per-connection deadline timer) and time is the real
    clock, the policy only sets `Call.timeout` and leaves the timing to the transport: same
    error, same cancellation, one timer fewer per call. On any other clock (a `FakeClock`)
    the policy keeps its own scope, so tests that move time still see the timeout.

    Args:
        default: Seconds an attempt may take when the call's context sets no timeout;
            0 or None means no limit.
        clock: Where time comes from (a `FakeClock` in tests).
        transport_enforced: The transport below enforces `Call.timeout` itself.
    """

    __slots__ = ("_delegate", "_scope", "clock", "default")

    def __init__(self, default: float | None, clock: Clock = system_clock, *, transport_enforced: bool = False) -> None:
        self.default = default or None
        self.clock = clock
        self._scope = clock.timeout  # bound once: this runs on every attempt
        # The transport times calls on the event loop's clock, which is the system clock's.
        self._delegate = transport_enforced and isinstance(clock, SystemClock)

    def bind(self, call_next: Handler) -> Handler:
        attempt = self._attempt
        if not self._delegate:
            return lambda call: attempt(call, call_next)
        default = self.default

        def timeout(call: Call) -> Awaitable[Any]:
            context = call.context
            if context.total_timeout is not None or call.deadline is not None:
                return attempt(call, call_next)
            # The transport times the attempt: only set its limit, and add no frame of our own.
            limit = default if context.timeout is None else context.timeout
            if limit is not None and call.timeout != limit:
                call = replace(call, timeout=limit)
            return call_next(call)

        return timeout

    async def _attempt(self, call: Call, call_next: Handler) -> Any:
        context = call.context
        timeout = self.default if context.timeout is None else context.timeout
        if context.total_timeout is not None or call.deadline is not None:
            call = stamp_deadline(call, self.clock)
            timeout = self._within_deadline(call, timeout)
        if timeout is None:
            return await call_next(call)
        if call.timeout != timeout:
            call = replace(call, timeout=timeout)
        if self._delegate:
            return await call_next(call)
        scope = self._scope(timeout)
        try:
            async with scope:
                return await call_next(call)
        except TimeoutError:
            if not scope.expired():
                raise  # a timeout reported by the plugin or transport, already coded
            # Whether the transport below had sent the request is not known here: say it may have.
            raise attempt_timed_out(call) from None

    def _within_deadline(self, call: Call, timeout: float | None) -> float | None:
        """The attempt's limit cut to what is left of the call's deadline."""
        assert call.deadline is not None
        left = call.deadline - self.clock.monotonic()
        if left <= 0:
            raise PluginTimeoutError(
                "the call's overall deadline passed before this attempt",
                plugin=call.plugin,
                details={"total_timeout": call.context.total_timeout, "attempt": call.attempt},
                request_sent=RequestSent.NO,
            )
        return left if timeout is None or left < timeout else timeout
