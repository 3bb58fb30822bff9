"""Per-attempt timeout: `ExecutionContext.timeout`, else the plugin's `request_timeout`,
never past the call's overall deadline."""

from __future__ import annotations

from typing import Any

from .._clock import Clock, system_clock
from .._errors import PluginTimeoutError
from .._transports.base import Call
from ._calls import stamp_deadline, with_timeout
from .chain import Handler

__all__ = ["TimeoutPolicy"]


class TimeoutPolicy:
    """Bounds each attempt; on expiry the transport's call is cancelled (which tells the
    plugin to stop) and the caller gets `PluginTimeoutError` (1204).

    The limit of an attempt is the smaller of its own timeout and what is left of the call's
    overall deadline (`ExecutionContext.total_timeout`); an attempt that starts with no time
    left fails at once without reaching the plugin.

    Args:
        default: Seconds an attempt may take when the call's context sets no timeout;
            0 or None means no limit.
        clock: Where time comes from (a `FakeClock` in tests).
    """

    __slots__ = ("_scope", "clock", "default")

    def __init__(self, default: float | None, clock: Clock = system_clock) -> None:
        self.default = default or None
        self.clock = clock
        self._scope = clock.timeout  # bound once: this runs on every attempt

    async def __call__(self, call: Call, call_next: Handler) -> Any:
        context = call.context
        timeout = self.default if context.timeout is None else context.timeout
        if context.total_timeout is not None or call.deadline is not None:
            call = stamp_deadline(call, self.clock)
            timeout = self._within_deadline(call, timeout)
        if timeout is None:
            return await call_next(call)
        if call.timeout != timeout:
            call = with_timeout(call, timeout)
        scope = self._scope(timeout)
        try:
            async with scope:
                return await call_next(call)
        except TimeoutError:
            if not scope.expired():
                raise  # a timeout reported by the plugin or transport, already coded
            raise PluginTimeoutError(
                f"no answer within {timeout:g}s",
                plugin=call.plugin,
                details={"timeout": timeout, "attempt": call.attempt},
            ) from None

    def _within_deadline(self, call: Call, timeout: float | None) -> float | None:
        """The attempt's limit cut to what is left of the call's deadline."""
        assert call.deadline is not None
        left = call.deadline - self.clock.monotonic()
        if left <= 0:
            raise PluginTimeoutError(
                "the call's overall deadline passed before this attempt",
                plugin=call.plugin,
                details={"total_timeout": call.context.total_timeout, "attempt": call.attempt},
            )
        return left if timeout is None or left < timeout else timeout
