"""Injectable time: every policy and monitor reads the clock through this interface."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Protocol

__all__ = ["Clock", "SystemClock", "TimeoutScope", "system_clock"]


class TimeoutScope(Protocol):
    """An async context manager that cancels its body when its clock passes a deadline.

    Like `asyncio.timeout()`: on expiry the body is cancelled and `TimeoutError` is raised
    from the `async with`; `expired()` tells a timeout of this scope from any other.
    """

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None: ...

    def expired(self) -> bool:
        """Whether this scope's deadline passed while its body ran."""
        ...


class Clock(Protocol):
    """A source of monotonic time that can also wait.

    `plugwire.testing.FakeClock` implements it so tests move time instead of sleeping.
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for `seconds` of this clock's time."""
        ...

    def timeout(self, seconds: float | None) -> TimeoutScope:
        """A scope that times its body out after `seconds` of this clock's time (None: never)."""
        ...


class SystemClock:
    """The real clock: `time.monotonic` and `asyncio.sleep`."""

    __slots__ = ()

    # The C function itself: read on every call by several policies, so no Python frame.
    monotonic = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float | None) -> asyncio.Timeout:
        return asyncio.timeout(seconds)


system_clock = SystemClock()
