"""The attempt deadlines of one connection's pending calls, watched by a single timer.

A timer per call (what `asyncio.timeout()` costs) is a measurable share of a fast round
trip, and so is any bookkeeping per call. Here a call's deadline costs nothing beyond the
entry its connection keeps for every sent call anyway (`Sent`: where its frame ends, its
deadline, the `Call`), plus one comparison: a call whose deadline comes before the timer's
re-arms it. When the timer fires, the calls sent since it last fired and still pending go
into a heap (in steady traffic that is only the calls in flight at that moment: the rest
were answered and left the table), the due ones expire, and the timer is set for the
earliest left. Entries of calls answered after they went into the heap stay there until
they reach its top, or until there are `_STALE_LIMIT` more of them than pending calls.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from typing import Final

from .base import Call

__all__ = ["Deadlines", "Sent"]

_STALE_LIMIT: Final = 64

Sent = tuple["asyncio.Future[bytes]", int, float | None, Call | None]
"""What a connection keeps per pending call: the future its answer resolves, how many bytes
it had written once the call's frame was written (outcome-unknown or not sent, when it
breaks), the call's deadline on the loop's clock (None: none), and the `Call` (for the
timeout error)."""


class Deadlines:
    """Deadlines on the event loop's clock, one timer for all.

    Args:
        loop: The loop whose clock and timers are used.
        sent: The connection's pending calls by id, in the order they were sent (read, never
            changed here).
        expire: Called with the id and the `Call` (as sent) of each pending call whose deadline passed.
    """

    __slots__ = ("_expire", "_heap", "_loop", "_merged_upto", "_sent", "_timer", "armed_at")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sent: dict[int, Sent], expire: Callable[[int, Call | None], None]
    ) -> None:
        self._loop = loop
        self._sent = sent
        self._expire = expire
        self._heap: list[tuple[float, int]] = []  # (deadline, id) of calls pending at a firing, earliest first
        self._merged_upto = 0  # the newest id looked at when the timer last fired
        self._timer: asyncio.TimerHandle | None = None
        #: When the timer fires (inf: not armed). A call with an earlier deadline must `arm`
        #: it: the connection compares inline, on every call.
        self.armed_at = math.inf

    def __len__(self) -> int:
        """Deadlines held: in the heap (stale ones included), and of pending calls sent since."""
        newer = sum(1 for call_id, entry in self._sent.items() if call_id > self._merged_upto and entry[2] is not None)
        return len(self._heap) + newer

    @property
    def armed(self) -> bool:
        """Whether the timer is set."""
        return self._timer is not None

    def arm(self, deadline: float) -> None:
        """Fire at `deadline` (a new call's, earlier than `armed_at`)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._fire)
        self.armed_at = deadline

    def clear(self) -> None:
        """Forget every deadline and stop the timer (the connection is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.armed_at = math.inf
        self._heap.clear()

    def _merge(self) -> None:
        """Move the deadlines of the calls sent since the last firing, and still pending,
        into the heap (newest first, down to the last one merged: ids grow as calls are sent)."""
        sent = self._sent
        heap = self._heap
        upto = self._merged_upto
        fresh: list[tuple[float, int]] = []
        for call_id in reversed(sent):
            if call_id <= upto:
                break
            deadline = sent[call_id][2]
            if deadline is not None:
                fresh.append((deadline, call_id))
        if sent:
            self._merged_upto = max(upto, next(reversed(sent)))
        if len(heap) + len(fresh) > len(sent) + _STALE_LIMIT:
            heap[:] = [entry for entry in heap if entry[1] in sent]
            heap.extend(fresh)
            heapq.heapify(heap)
        else:
            for entry in fresh:
                heapq.heappush(heap, entry)

    def _fire(self) -> None:
        self._timer = None
        self.armed_at = math.inf
        self._merge()
        heap = self._heap
        sent = self._sent
        now = self._loop.time()
        while heap:
            deadline, call_id = heap[0]
            entry = sent.get(call_id)
            if entry is not None and deadline > now:
                break
            heapq.heappop(heap)
            if entry is not None:
                self._expire(call_id, entry[3])
        # Expiring a call may have sent new ones (they armed the timer if they came first).
        if heap and heap[0][0] < self.armed_at:
            self.arm(heap[0][0])
