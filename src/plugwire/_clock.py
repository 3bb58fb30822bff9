"""Injectable time: every policy and monitor reads the clock through this interface."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "system_clock"]


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


class SystemClock:
    """The real clock: `time.monotonic` and `asyncio.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


system_clock = SystemClock()
