"""The attempt deadlines of one connection's pending calls, watched by a single timer.

A timer per call (what `asyncio.timeout()` costs) is a measurable share of a fast round
trip; here a call costs one heap push, and the one timer is re-armed only when a call's
deadline comes before every other. Answered calls leave their entry behind (removing it
would cost every call a search): an entry whose call is no longer pending is skipped when
it surfaces, and the heap is rebuilt from the pending calls once it holds
`_STALE_LIMIT` more entries than there are pending calls.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Mapping
from typing import Final

from .base import Call

__all__ = ["Deadlines"]

_STALE_LIMIT: Final = 64


class Deadlines:
    """Deadlines on the event loop's clock, one timer for all.

    Args:
        loop: The loop whose clock and timers are used.
        pending: The calls still waiting for an answer, by id (read, never changed here).
        expire: Called with the id and the `Call` of each pending call whose deadline passed.
    """

    __slots__ = ("_expire", "_heap", "_loop", "_pending", "_timer")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pending: Mapping[int, object], expire: Callable[[int, Call], None]
    ) -> None:
        self._loop = loop
        self._pending = pending
        self._expire = expire
        self._heap: list[tuple[float, int, Call]] = []
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """Entries held, stale ones included (bounded by the pending calls + 64)."""
        return len(self._heap)

    @property
    def armed(self) -> bool:
        """Whether the timer is set."""
        return self._timer is not None

    def watch(self, deadline: float, call_id: int, call: Call) -> None:
        """Expire call `call_id` at `deadline` (loop time) unless it is answered before."""
        heap = self._heap
        heapq.heappush(heap, (deadline, call_id, call))
        timer = self._timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._fire)
        elif len(heap) > len(self._pending) + _STALE_LIMIT:
            pending = self._pending
            heap[:] = [entry for entry in heap if entry[1] in pending]
            heapq.heapify(heap)

    def clear(self) -> None:
        """Forget every deadline and stop the timer (the connection is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()

    def _fire(self) -> None:
        self._timer = None
        heap = self._heap
        pending = self._pending
        now = self._loop.time()
        while heap:
            deadline, call_id, call = heap[0]
            if call_id in pending and deadline > now:
                self._timer = self._loop.call_at(deadline, self._fire)
                return
            heapq.heappop(heap)
            if call_id in pending:
                self._expire(call_id, call)
