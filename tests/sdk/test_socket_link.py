"""`SocketLink`: the plugin's socket on asyncio's loop without a transport, reading and writing as one does."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from plugwire._errors import ProtocolError
from plugwire._protocol import FrameReader
from plugwire._sdk._socket import HIGH_WATER, LOW_WATER, SocketLink


class Recorder(FrameReader):
    def __init__(self) -> None:
        super().__init__(1 << 20)
        self.frames: list[bytes] = []
        self.events: list[str] = []
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.got_frame = asyncio.Event()
        self.link: SocketLink
        self.backlog_at_resume = -1

    def connection_made(self, transport: object) -> None:
        assert isinstance(transport, SocketLink)
        self.link = transport

    def frame_received(self, envelope: memoryview) -> None:
        self.frames.append(bytes(envelope))
        self.got_frame.set()

    def frame_error(self, error: ProtocolError) -> None:
        self.events.append(f"error {error.code}")

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")
        self.backlog_at_resume = self.link.get_write_buffer_size()

    def eof_received(self) -> bool:
        self.events.append("eof")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


@pytest.fixture
async def pair() -> AsyncIterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    yield ours, peer
    ours.close()
    peer.close()


async def read_exactly(peer: socket.socket, count: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < count:
        chunk = await loop.sock_recv(peer, 65536)
        assert chunk, "the link closed early"
        data += chunk
    return bytes(data)


async def test_frames_split_across_reads_are_delivered_whole_and_in_order(pair) -> None:  # type: ignore[no-untyped-def]
    ours, peer = pair
    protocol = Recorder()
    link = SocketLink(asyncio.get_running_loop(), ours, protocol)
    data = frame(b"first") + frame(b"second")
    peer.send(data[:7])
    await asyncio.sleep(0.01)
    assert protocol.frames == []
    peer.send(data[7:])
    while len(protocol.frames) < 2:
        protocol.got_frame.clear()
        await protocol.got_frame.wait()
    assert protocol.frames == [b"first", b"second"]
    assert link.is_reading()
    link.close()
    assert await protocol.lost is None


async def test_writes_the_socket_cannot_take_wait_in_order_and_push_back_above_the_high_water_mark(pair) -> None:  # type: ignore[no-untyped-def]
    ours, peer = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    protocol = Recorder()
    link = SocketLink(asyncio.get_running_loop(), ours, protocol)
    chunks = [bytes([i]) * 8192 for i in range(40)]  # far more than the socket buffers
    for chunk in chunks:
        link.write(chunk)
    assert link.get_write_buffer_size() > HIGH_WATER
    assert protocol.events == ["pause"]
    received = await read_exactly(peer, sum(map(len, chunks)))
    assert received == b"".join(chunks)
    assert protocol.events == ["pause", "resume"]
    assert 0 <= protocol.backlog_at_resume <= LOW_WATER
    assert link.get_write_buffer_size() == 0
    link.close()
    await protocol.lost


async def test_close_sends_what_is_buffered_before_the_connection_ends(pair) -> None:  # type: ignore[no-untyped-def]
    ours, peer = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    protocol = Recorder()
    link = SocketLink(asyncio.get_running_loop(), ours, protocol)
    link.write(b"y" * 100_000)
    link.close()
    assert link.is_closing()
    assert not protocol.lost.done()
    assert await read_exactly(peer, 100_000) == b"y" * 100_000
    assert await protocol.lost is None
    assert ours.fileno() == -1  # the link closed its socket


async def test_end_of_input_is_reported_then_the_connection_ends(pair) -> None:  # type: ignore[no-untyped-def]
    ours, peer = pair
    protocol = Recorder()
    link = SocketLink(asyncio.get_running_loop(), ours, protocol)
    peer.send(frame(b"last"))
    peer.shutdown(socket.SHUT_WR)
    assert await protocol.lost is None
    assert protocol.frames == [b"last"]
    assert protocol.events == ["eof", "lost"]
    assert link.is_closing()
    assert not link.is_reading()


async def test_a_write_to_a_peer_that_is_gone_ends_the_connection_with_the_error(pair) -> None:  # type: ignore[no-untyped-def]
    ours, peer = pair
    protocol = Recorder()
    link = SocketLink(asyncio.get_running_loop(), ours, protocol)
    link.pause_reading()  # only the write sees the broken pipe
    peer.close()
    link.write(b"answer")
    error = await protocol.lost
    assert isinstance(error, OSError)
    link.write(b"more")  # ignored once lost, as a transport does
    assert link.get_write_buffer_size() == 0


async def test_pause_reading_stops_delivery_until_resumed(pair) -> None:  # type: ignore[no-untyped-def]
    ours, peer = pair
    protocol = Recorder()
    link = SocketLink(asyncio.get_running_loop(), ours, protocol)
    link.pause_reading()
    peer.send(frame(b"held"))
    await asyncio.sleep(0.01)
    assert protocol.frames == []
    link.resume_reading()
    await protocol.got_frame.wait()
    assert protocol.frames == [b"held"]
    link.close()
    await protocol.lost


async def test_a_protocol_that_raises_ends_the_connection_and_reaches_the_exception_handler(pair) -> None:  # type: ignore[no-untyped-def]
    ours, peer = pair
    loop = asyncio.get_running_loop()
    seen: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: seen.append(context))
    try:
        protocol = Recorder()
        boom = RuntimeError("bug")

        def broken(envelope: memoryview) -> None:
            raise boom

        protocol.frame_received = broken  # type: ignore[method-assign]
        SocketLink(loop, ours, protocol)
        peer.send(frame(b"x"))
        assert await protocol.lost is boom
        assert seen
        assert seen[0]["exception"] is boom
    finally:
        loop.set_exception_handler(None)


async def test_a_tcp_socket_sends_without_nagle_delay() -> None:
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        try:
            protocol = Recorder()
            link = SocketLink(loop, accepted, protocol)
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            link.write(b"ping")
            client.settimeout(10)
            assert client.recv(16) == b"ping"
            link.close()
            await protocol.lost
        finally:
            client.close()
            accepted.close()
