"""`Deadlines`: one timer for a connection's pending calls, expiring each at its own time."""

from __future__ import annotations

import asyncio

from plugwire import ExecutionContext
from plugwire._transports._deadlines import Deadlines, Sent
from plugwire._transports.base import Call


def attempt(n: int) -> Call:
    return Call(plugin="p", payload=b"", context=ExecutionContext(request_id=str(n)), timeout=1.0)


def send(sent: dict[int, Sent], deadlines: Deadlines, call_id: int, deadline: float) -> None:
    """What the connection does for each call it sends."""
    sent[call_id] = (asyncio.get_running_loop().create_future(), 0, deadline, attempt(call_id))
    if deadline < deadlines.armed_at:
        deadlines.arm(deadline)


async def test_pending_calls_expire_in_deadline_order_and_answered_ones_never() -> None:
    loop = asyncio.get_running_loop()
    sent: dict[int, Sent] = {}
    expired: list[int] = []
    done = asyncio.Event()

    def expire(call_id: int, call: Call | None) -> None:
        assert call is not None
        assert call.context.request_id == str(call_id)
        del sent[call_id]
        expired.append(call_id)
        if not sent:
            done.set()

    deadlines = Deadlines(loop, sent, expire)
    now = loop.time()
    # Sent out of order: a later call may have an earlier deadline (a shorter timeout).
    for call_id, offset in [(1, 0.06), (2, 0.02), (3, 0.04), (4, 0.01), (5, 0.05)]:
        send(sent, deadlines, call_id, now + offset)
    del sent[3]  # answered before its deadline
    await asyncio.wait_for(done.wait(), 5)
    assert expired == [4, 2, 5, 1]
    assert loop.time() >= now + 0.06
    assert not deadlines.armed


async def test_answered_calls_leave_nothing_behind_and_stale_entries_stay_bounded() -> None:
    loop = asyncio.get_running_loop()
    sent: dict[int, Sent] = {}
    expired: list[int] = []
    fired = asyncio.Event()

    def expire(call_id: int, call: Call | None) -> None:
        del sent[call_id]
        expired.append(call_id)
        fired.set()

    deadlines = Deadlines(loop, sent, expire)
    far = loop.time() + 3600
    for call_id in range(1, 1001):
        send(sent, deadlines, call_id, far + call_id)
        del sent[call_id]  # answered at once, as in steady traffic: nothing kept per call
    assert len(deadlines) == 0
    assert deadlines.armed  # still armed for the first deadline: harmless, it finds nothing
    # Calls still pending when the timer fires go into its heap; answered afterwards, their
    # entries are dropped once they pile up.
    for round_ in range(5):
        base = 2000 + 1000 * round_
        for call_id in range(base, base + 300):
            send(sent, deadlines, call_id, far + call_id)
        fired.clear()
        send(sent, deadlines, base + 999, loop.time())  # due now: the timer fires
        await asyncio.wait_for(fired.wait(), 5)
        for call_id in range(base, base + 300):
            del sent[call_id]
        assert len(deadlines) <= 300 + 64
    assert expired == [2000 + 1000 * r + 999 for r in range(5)]
    deadlines.clear()
    assert not deadlines.armed


async def test_a_deadline_set_while_others_expire_still_fires() -> None:
    loop = asyncio.get_running_loop()
    sent: dict[int, Sent] = {}
    expired: list[int] = []
    done = asyncio.Event()

    def expire(call_id: int, call: Call | None) -> None:
        del sent[call_id]
        expired.append(call_id)
        if call_id == 1:  # the expiry of one call sends another (a retry, say)
            send(sent, deadlines, 2, loop.time() + 0.01)
        else:
            done.set()

    deadlines = Deadlines(loop, sent, expire)
    send(sent, deadlines, 1, loop.time() + 0.01)
    await asyncio.wait_for(done.wait(), 5)
    assert expired == [1, 2]
