"""Reading an answer right after its request went out, when the plugin already wrote it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

import plugwire
from plugwire import ExecutionContext
from plugwire._protocol import CallContext, PluginHello, handshake_frame
from plugwire._transports import _readahead
from plugwire._transports._connection import HostConnection
from plugwire._transports._readahead import MISSES, PAUSE, ReadAhead
from plugwire._transports.base import Call

pytestmark = pytest.mark.fast_paths_only  # the accelerator itself


def reply(call_id: int, payload: bytes = b"ok") -> bytes:
    body = msgspec.msgpack.encode({"type": "result", "id": call_id, "payload": payload})
    return len(body).to_bytes(4, "big") + body


def read_frame(sock: socket.socket) -> bytes:
    size = int.from_bytes(sock.recv(4, socket.MSG_WAITALL), "big")
    return sock.recv(size, socket.MSG_WAITALL)


@pytest.fixture
async def linked() -> AsyncIterator[tuple[HostConnection, socket.socket]]:
    """A host connection on a real socket transport; the test plays the plugin on `peer`."""
    ours, peer = socket.socketpair()
    conn = HostConnection("p")
    await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, ours)
    conn.attach_socket(ours)
    conn.send_hello(["msgpack"], {})
    read_frame(peer)
    peer.sendall(handshake_frame(PluginHello(version=1, codec="msgpack", info=plugwire.PluginInfo(name="p"))))
    await asyncio.wait_for(conn.handshake, 5)
    try:
        yield conn, peer
    finally:
        conn.close(plugwire.TransportError("test over", plugin="p"))
        peer.close()
        await asyncio.sleep(0)


async def test_an_answer_already_written_completes_the_call_before_it_is_awaited(
    linked: tuple[HostConnection, socket.socket],
) -> None:
    conn, peer = linked
    assert conn.read_ahead is not None  # the standard selector loop
    peer.sendall(reply(1))  # as a plugin on the same CPU does before our send() returns
    attempt = Call(plugin="p", payload=b"\xc0", context=ExecutionContext(request_id="r"), timeout=30.0)
    _, future = conn.send_call(b"\xc0", CallContext(), conn.loop_time() + 30.0, attempt)
    assert future.done()
    assert future.result() == msgspec.msgpack.encode(b"ok")
    assert conn.read_ahead.hits == 1
    assert len(conn._deadlines) == 0  # answered already: no deadline to watch
    assert read_frame(peer)  # the request did go out


async def test_no_reading_ahead_while_more_is_due_in_this_loop_turn(
    linked: tuple[HostConnection, socket.socket],
) -> None:
    conn, peer = linked
    assert conn.read_ahead is not None
    peer.sendall(reply(1))
    asyncio.get_running_loop().call_soon(lambda: None)  # say, the other calls of a `gather`
    _, future = conn.send_call(b"\xc0", CallContext())
    assert not future.done()
    assert await asyncio.wait_for(future, 5) == msgspec.msgpack.encode(b"ok")  # read by the transport
    assert conn.read_ahead.hits == 0


async def test_a_call_made_while_more_is_due_waits_to_leave_with_the_others(
    linked: tuple[HostConnection, socket.socket],
) -> None:
    # The other callers a burst of answers woke are due in the same turn: the first of them
    # does not go out alone (which would wake the plugin for one call), the burst leaves in one write.
    conn, peer = linked
    assert conn.transport is not None
    writes: list[bytes] = []
    write = conn.transport.write

    def recording(data: Any) -> None:
        writes.append(bytes(data))
        write(data)

    conn.transport.write = recording  # type: ignore[method-assign]
    calls = [asyncio.create_task(conn.call(b"\xc0", CallContext())) for _ in range(5)]
    await asyncio.sleep(0)  # the five calls write their frames in this turn, with this test due too
    assert writes == []
    await asyncio.sleep(0)  # the end of the turn
    assert len(writes) == 1
    frames = [read_frame(peer) for _ in range(5)]
    assert writes[0] == b"".join(len(frame).to_bytes(4, "big") + frame for frame in frames)
    peer.sendall(b"".join(reply(i) for i in range(1, 6)))
    assert await asyncio.wait_for(asyncio.gather(*calls), 5) == [msgspec.msgpack.encode(b"ok")] * 5


class Collect:
    """A buffered protocol that keeps what it is given."""

    def __init__(self) -> None:
        self.buffer = bytearray(64)
        self.got = b""

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.got += bytes(self.buffer[:nbytes])


def test_empty_reads_in_a_row_pause_reading_ahead_then_it_tries_again() -> None:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    with ours, peer:
        reader = Collect()
        ahead = ReadAhead(ours, reader)
        for _ in range(MISSES):
            ahead.after_write()
        assert ahead.paused == PAUSE
        peer.sendall(b"late")
        for _ in range(PAUSE):
            ahead.after_write()  # paused: the bytes are left to the event loop's read
        assert reader.got == b""
        ahead.after_write()
        assert reader.got == b"late"
        assert ahead.hits == 1


def test_end_of_input_is_left_for_the_transport_to_see() -> None:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    with ours:
        reader = Collect()
        ahead = ReadAhead(ours, reader)
        peer.close()
        ahead.after_write()
        assert reader.got == b""
        assert ours.recv(1) == b""  # still there to be read


def test_an_empty_first_read_yields_the_cpu_once_and_reads_again(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    with ours, peer:

        def plugin_runs() -> None:  # what yielding lets a plugin waiting on this CPU do
            peer.sendall(b"answer")

        monkeypatch.setattr(_readahead, "_yield", plugin_runs)
        reader = Collect()
        ahead = ReadAhead(ours, reader)
        ahead.after_write()
        assert reader.got == b"answer"
        assert ahead.hits == 1
