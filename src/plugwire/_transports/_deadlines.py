"""The attempt deadlines of one connection's pending calls, watched by a single timer.

A timer per call (what `asyncio.timeout()` costs) is a measurable share of a fast round
trip. Here a new deadline is only appended to a list (and the one timer re-armed when it
comes before the armed time); the list is merged into a heap when the timer fires, leaving
out the calls answered meanwhile, which in steady traffic is all of them. Entries of
answered calls are otherwise left behind (removing each would cost every call a search) and
dropped once there are `_STALE_LIMIT` more entries than pending calls.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable, Mapping
from typing import Final

from .base import Call

__all__ = ["Deadlines"]

_STALE_LIMIT: Final = 64

_Entry = tuple[float, int, Call]


class Deadlines:
    """Deadlines on the event loop's clock, one timer for all.

    Args:
        loop: The loop whose clock and timers are used.
        pending: The calls still waiting for an answer, by id (read, never changed here).
        expire: Called with the id and the `Call` of each pending call whose deadline passed.
    """

    __slots__ = ("_armed_at", "_expire", "_heap", "_loop", "_new", "_pending", "_timer")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pending: Mapping[int, object], expire: Callable[[int, Call], None]
    ) -> None:
        self._loop = loop
        self._pending = pending
        self._expire = expire
        self._heap: list[_Entry] = []  # merged entries, earliest first
        self._new: list[_Entry] = []  # watched since the last merge, in arrival order
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def __len__(self) -> int:
        """Entries held, stale ones included (bounded by the pending calls + 64)."""
        return len(self._heap) + len(self._new)

    @property
    def armed(self) -> bool:
        """Whether the timer is set."""
        return self._timer is not None

    def watch(self, deadline: float, call_id: int, call: Call) -> None:
        """Expire call `call_id` at `deadline` (loop time) unless it is answered before."""
        new = self._new
        new.append((deadline, call_id, call))
        if deadline < self._armed_at:
            self._arm(deadline)
        elif len(new) > len(self._pending) + _STALE_LIMIT:
            # Drop the answered calls' entries; the heap is only built when the timer fires.
            pending = self._pending
            self._new = [entry for entry in new if entry[1] in pending]

    def clear(self) -> None:
        """Forget every deadline and stop the timer (the connection is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_at = math.inf
        self._heap.clear()
        self._new.clear()

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._fire)
        self._armed_at = deadline

    def _merge(self) -> None:
        """Move the new entries of still-pending calls into the heap, dropping stale ones."""
        pending = self._pending
        heap = self._heap
        fresh = [entry for entry in self._new if entry[1] in pending]
        self._new = []
        if len(heap) > len(pending) + _STALE_LIMIT:
            heap[:] = [entry for entry in heap if entry[1] in pending]
            heap.extend(fresh)
            heapq.heapify(heap)
        else:
            for entry in fresh:
                heapq.heappush(heap, entry)

    def _fire(self) -> None:
        self._timer = None
        self._armed_at = math.inf
        self._merge()
        heap = self._heap
        pending = self._pending
        now = self._loop.time()
        while heap:
            deadline, call_id, call = heap[0]
            if call_id in pending and deadline > now:
                break
            heapq.heappop(heap)
            if call_id in pending:
                self._expire(call_id, call)
        # Expiring a call may have watched new ones (they armed the timer if they came first).
        earliest = min(heap[0][0] if heap else math.inf, min((e[0] for e in self._new), default=math.inf))
        if earliest < self._armed_at:
            self._arm(earliest)
