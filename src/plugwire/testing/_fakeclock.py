"""`FakeClock`: time that only moves when a test says so, for policies and monitors."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from types import TracebackType

__all__ = ["FakeClock"]


class FakeClock:
    """A `plugwire` clock whose time a test moves by hand, so nothing ever really sleeps.

    It implements the `Clock` protocol: `monotonic()` reads the fake time, `sleep()` waits
    until a test moves the time past the sleeper's deadline, and `timeout()` scopes expire
    when the fake time passes them. Use it on one event loop.

    Example:
        ```python
        clock = FakeClock()
        task = asyncio.create_task(clock.sleep(5))
        await clock.wait_for_sleepers(1)
        clock.advance(5)  # the task's sleep ends on its next step
        await task
        ```

    Args:
        start: The time `monotonic()` reads at first.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._scopes: list[tuple[float, int, _FakeTimeout]] = []
        self._changed: asyncio.Event | None = None

    # ------------------------------------------------------------------- Clock
    def monotonic(self) -> float:
        """The fake time, in seconds."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the fake time reaches now + `seconds` (a zero sleep just yields)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        self._notify()
        await future

    def timeout(self, seconds: float | None) -> _FakeTimeout:
        """A scope like `asyncio.timeout(seconds)` that expires on the fake time."""
        return _FakeTimeout(self, None if seconds is None else self._now + seconds)

    # --------------------------------------------------------------- test side
    def advance(self, seconds: float) -> None:
        """Move the time forward by `seconds`, waking every sleeper and timeout now due.

        Woken tasks run the next time the test awaits something.

        Raises:
            ValueError: `seconds` is negative.
        """
        if seconds < 0:
            raise ValueError(f"time cannot go backwards ({seconds!r})")
        self.advance_to(self._now + seconds)

    def advance_to(self, when: float) -> None:
        """Set the time to `when` exactly (never backwards) and wake everything due by then."""
        self._now = max(self._now, when)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        while self._scopes and self._scopes[0][0] <= self._now:
            _, _, scope = heapq.heappop(self._scopes)
            scope.fire()

    @property
    def next_deadline(self) -> float | None:
        """The earliest time a sleeper or timeout is waiting for, or None."""
        self._drop_cancelled()
        times = [entries[0][0] for entries in (self._sleepers, self._scopes) if entries]
        return min(times) if times else None

    @property
    def sleepers(self) -> int:
        """How many `sleep()` calls are waiting (cancelled ones not counted)."""
        self._drop_cancelled()
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def wait_for_sleepers(self, count: int) -> None:
        """Return once at least `count` tasks are sleeping on this clock (no polling)."""
        while self.sleepers < count:
            if self._changed is None:
                self._changed = asyncio.Event()
            self._changed.clear()
            await self._changed.wait()

    # ---------------------------------------------------------------- internal
    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _drop_cancelled(self) -> None:
        kept = [entry for entry in self._sleepers if not entry[2].done()]
        if len(kept) != len(self._sleepers):
            heapq.heapify(kept)
            self._sleepers = kept

    def _register(self, when: float, scope: _FakeTimeout) -> None:
        heapq.heappush(self._scopes, (when, next(self._order), scope))

    def _unregister(self, scope: _FakeTimeout) -> None:
        kept = [entry for entry in self._scopes if entry[2] is not scope]
        heapq.heapify(kept)
        self._scopes = kept


class _FakeTimeout:
    """An `asyncio.Timeout` that the fake clock triggers instead of the event loop."""

    __slots__ = ("_active", "_clock", "_inner", "_when")

    def __init__(self, clock: FakeClock, when: float | None) -> None:
        self._clock = clock
        self._when = when
        self._inner = asyncio.Timeout(None)
        self._active = False

    async def __aenter__(self) -> _FakeTimeout:
        await self._inner.__aenter__()
        self._active = True
        if self._when is not None:
            if self._when <= self._clock.monotonic():
                self.fire()
            else:
                self._clock._register(self._when, self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._active:
            self._active = False
            self._clock._unregister(self)
        await self._inner.__aexit__(exc_type, exc, tb)

    def fire(self) -> None:
        """Expire now: the body is cancelled on the loop's next step, as asyncio does it."""
        if self._active:
            self._active = False
            self._inner.reschedule(asyncio.get_running_loop().time())

    def expired(self) -> bool:
        return self._inner.expired()
