"""The call's overall deadline: set once, from `ExecutionContext.total_timeout`, by the first
policy that needs it (rate-limit wait, retry, timeout)."""

from __future__ import annotations

import dataclasses

from .._clock import Clock
from .._transports.base import Call

__all__ = ["remaining", "stamp_deadline"]


def stamp_deadline(call: Call, clock: Clock) -> Call:
    """Return `call` with its absolute deadline set, if its context has a total timeout.

    The deadline is kept on the `Call` so that every policy below measures the same budget
    from the same moment.
    """
    total = call.context.total_timeout
    if call.deadline is not None or total is None:
        return call
    return dataclasses.replace(call, deadline=clock.monotonic() + total)


def remaining(call: Call, clock: Clock) -> float | None:
    """Seconds left before the call's deadline (may be negative), or None without one."""
    if call.deadline is None:
        return None
    return call.deadline - clock.monotonic()
