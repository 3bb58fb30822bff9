"""`Deadlines`: one timer for a connection's pending calls, expiring each at its own time."""

from __future__ import annotations

import asyncio

from plugwire import ExecutionContext
from plugwire._transports._deadlines import Deadlines
from plugwire._transports.base import Call


def attempt(n: int) -> Call:
    return Call(plugin="p", payload=b"", context=ExecutionContext(request_id=str(n)), timeout=1.0)


async def test_pending_calls_expire_in_deadline_order_and_answered_ones_never() -> None:
    loop = asyncio.get_running_loop()
    pending: dict[int, object] = {}
    expired: list[int] = []
    done = asyncio.Event()

    def expire(call_id: int, call: Call) -> None:
        assert call.context.request_id == str(call_id)
        del pending[call_id]
        expired.append(call_id)
        if not pending:
            done.set()

    deadlines = Deadlines(loop, pending, expire)
    now = loop.time()
    # Watched out of order: a later call may have an earlier deadline (a shorter timeout).
    for call_id, offset in [(1, 0.06), (2, 0.02), (3, 0.04), (4, 0.01), (5, 0.05)]:
        pending[call_id] = object()
        deadlines.watch(now + offset, call_id, attempt(call_id))
    del pending[3]  # answered before its deadline
    await asyncio.wait_for(done.wait(), 5)
    assert expired == [4, 2, 5, 1]
    assert loop.time() >= now + 0.06
    assert not deadlines.armed


async def test_entries_of_answered_calls_are_dropped_once_they_pile_up() -> None:
    loop = asyncio.get_running_loop()
    pending: dict[int, object] = {}
    deadlines = Deadlines(loop, pending, lambda call_id, call: None)
    far = loop.time() + 3600
    for call_id in range(1, 1001):
        pending[call_id] = object()
        deadlines.watch(far + call_id, call_id, attempt(call_id))
        del pending[call_id]  # answered at once, as in steady traffic
    assert len(deadlines) <= 65
    assert deadlines.armed  # still armed for the first deadline: harmless, it finds nothing
    deadlines.clear()
    assert len(deadlines) == 0
    assert not deadlines.armed


async def test_a_deadline_watched_while_others_expire_still_fires() -> None:
    loop = asyncio.get_running_loop()
    pending: dict[int, object] = {1: object()}
    expired: list[int] = []
    done = asyncio.Event()

    def expire(call_id: int, call: Call) -> None:
        del pending[call_id]
        expired.append(call_id)
        if call_id == 1:  # the expiry of one call starts another (a retry, say)
            pending[2] = object()
            deadlines.watch(loop.time() + 0.01, 2, attempt(2))
        else:
            done.set()

    deadlines = Deadlines(loop, pending, expire)
    deadlines.watch(loop.time() + 0.01, 1, attempt(1))
    await asyncio.wait_for(done.wait(), 5)
    assert expired == [1, 2]
