"""Per-attempt timeout: `ExecutionContext.timeout`, else the plugin's `request_timeout`,
never past the call's overall deadline."""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from .._call import Call, attempt_timed_out
from .._clock import Clock, system_clock
from .._errors import PluginTimeoutError, RequestSent
from .._models import ExecutionContext
from .chain import Handler

__all__ = ["AttemptTimeout"]


class AttemptTimeout:
    """Bounds each attempt; on expiry the transport's call is cancelled (which tells the
    plugin to stop) and the caller gets `PluginTimeoutError` (1204), whose `request_sent`
    says whether the request had left (only then is the outcome unknown).

    The limit of an attempt (`limit_for`) is its context's timeout, else `default`, cut to
    what is left of the call's overall deadline (`within_deadline`); an attempt that starts
    with no time left fails at once without reaching the plugin.

    When the transport enforces `Call.timeout` itself (`transport_enforced`, from
    `BaseTransport.enforces_timeout`, e.g. the subprocess transport's per-connection
    deadline timer), `delegated` is true: the pipeline only sets `Call.timeout` and leaves
    the timing to the transport (same error, same cancellation, one timer fewer per call).
    Otherwise the attempt runs in this object's own scope on its clock (`run`).

    Args:
        default: Seconds an attempt may take when the call's context sets no timeout;
            0 or None means no limit.
        clock: Where time comes from (a `FakeClock` in tests).
        transport_enforced: The transport enforces `Call.timeout` itself, on this clock.
    """

    __slots__ = ("_scope", "clock", "default", "delegated")

    def __init__(self, default: float | None, clock: Clock = system_clock, *, transport_enforced: bool = False) -> None:
        self.default = default or None
        self.clock = clock
        self._scope = clock.timeout  # bound once: this runs on every attempt
        self.delegated = transport_enforced

    def limit_for(self, context: ExecutionContext) -> float | None:
        """The limit of every attempt of a call with `context`, before any deadline cut."""
        return self.default if context.timeout is None else context.timeout

    def within_deadline(self, call: Call) -> Call:
        """`call` with its timeout cut to what is left of its deadline (`call.deadline` set).

        Raises:
            PluginTimeoutError: The deadline has passed (1204; the request was not sent).
        """
        assert call.deadline is not None
        left = call.deadline - self.clock.monotonic()
        if left <= 0:
            raise PluginTimeoutError(
                "the call's overall deadline passed before this attempt",
                plugin=call.plugin,
                details={"total_timeout": call.context.total_timeout, "attempt": call.attempt},
                request_sent=RequestSent.NO,
            )
        if call.timeout is None or left < call.timeout:
            return replace(call, timeout=left)
        return call

    async def run(self, terminal: Handler, call: Call) -> Any:
        """`terminal(call)` within `call.timeout` seconds on this object's clock.

        Raises:
            PluginTimeoutError: The attempt took longer (1204, `RequestSent.MAYBE`: whether the
                transport below had sent the request is not known here).
        """
        assert call.timeout is not None
        scope = self._scope(call.timeout)
        try:
            async with scope:
                return await terminal(call)
        except TimeoutError:
            if not scope.expired():
                raise  # a timeout reported by the plugin or transport, already coded
            raise attempt_timed_out(call) from None
