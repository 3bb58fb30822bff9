"""The host connection batches a burst of frames into one write, and never delays a lone one;
with the accelerators off (`plain`) it writes each frame at once."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import plugwire
from plugwire._protocol import CallContext, PluginHello, handshake_frame
from plugwire._transports._connection import HostConnection
from tests.support.standin_transport import RecordingTransport


def frames_in(data: bytes) -> int:
    count = 0
    while data:
        size = int.from_bytes(data[:4], "big")
        data = data[4 + size :]
        count += 1
    return count


async def connected() -> tuple[HostConnection, RecordingTransport]:
    conn = HostConnection("p")
    transport = RecordingTransport()
    conn.connection_made(transport)
    conn.send_hello(["msgpack"], {})
    hello = PluginHello(version=1, codec="msgpack", info=plugwire.PluginInfo(name="p"))
    conn.data_received(handshake_frame(hello))
    assert conn.handshake.done()
    transport.writes.clear()
    return conn, transport


def reply(call_id: int) -> bytes:
    body = msgspec.msgpack.encode({"type": "result", "id": call_id, "payload": b"ok"})
    return len(body).to_bytes(4, "big") + body


async def test_calls_started_in_one_loop_turn_leave_in_two_writes_not_one_each(fast_paths: bool) -> None:
    # A transport without a socket to read ahead from (as on uvloop): the loop's queue is not
    # consulted, so the first call of the burst goes out at once and the rest follow together.
    conn, transport = await connected()
    calls = [asyncio.create_task(conn.call(b"\xc0", CallContext())) for _ in range(5)]
    await asyncio.sleep(0)  # the five calls write their frames in this turn
    if fast_paths:
        assert [frames_in(w) for w in transport.writes] == [1]  # the first goes out at once
        await asyncio.sleep(0)  # end of the turn: the other four together
        assert [frames_in(w) for w in transport.writes] == [1, 4]
    else:  # the plain path: each at once
        assert [frames_in(w) for w in transport.writes] == [1] * 5
    conn.data_received(b"".join(reply(i) for i in range(1, 6)))
    assert [await call for call in calls] == [msgspec.msgpack.encode(b"ok")] * 5


async def test_one_call_at_a_time_is_written_at_once_every_time() -> None:
    conn, transport = await connected()
    for call_id in range(1, 4):
        call = asyncio.create_task(conn.call(b"\xc0", CallContext()))
        await asyncio.sleep(0)
        assert len(transport.writes) == call_id  # written in the turn it was made, alone
        conn.data_received(reply(call_id))
        await call


@pytest.mark.fast_paths_only  # (the plain path holds nothing back)
async def test_frames_still_held_back_when_the_connection_breaks_were_not_sent() -> None:
    conn, transport = await connected()
    first = asyncio.create_task(conn.call(b"\xc0", CallContext()))
    second = asyncio.create_task(conn.call(b"\xc0", CallContext()))
    await asyncio.sleep(0)
    assert [frames_in(w) for w in transport.writes] == [1]  # the second is still held back
    conn.connection_lost(None)
    with pytest.raises(plugwire.OutcomeUnknownError):
        await first  # its frame was written: the plugin may have run it
    with pytest.raises(plugwire.TransportError) as caught:
        await second
    assert not isinstance(caught.value, plugwire.OutcomeUnknownError)
    assert "not sent" in str(caught.value)


async def test_a_call_sent_with_a_deadline_but_no_call_still_times_out_and_is_cancelled() -> None:
    conn, transport = await connected()
    call_id, future = conn.send_call(b"\xc0", CallContext(), conn.loop_time() + 0.01, None)
    with pytest.raises(plugwire.PluginTimeoutError, match="deadline"):
        await asyncio.wait_for(future, 5)
    cancel = msgspec.msgpack.decode(transport.writes[-1][4:])
    assert cancel == {"type": "cancel", "id": call_id}
    assert conn.inflight == 0
