"""Between calls the plugin waits for the host's next frame in the read that answered the last
one (in the loop's own epoll), and hands back to the event loop for anything else.

The server runs in the test's own event loop on one end of a real socket pair; a thread plays
the host with blocking reads and writes, so the loop is free to block in its wait.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

import plugwire
from plugwire._sdk._idle import IdleWait
from plugwire._sdk.adapter import PluginAdapter
from plugwire._sdk.stdio import StdioServer
from tests.support.procguard import PLUGINS, HandDriver

pytestmark = [
    pytest.mark.fast_paths_only,  # the accelerator itself
    pytest.mark.skipif(
        not hasattr(selectors, "EpollSelector"), reason="the wait between calls is built on epoll (Linux)"
    ),
]


class Echo:
    """Echoes; `after` runs in the loop during the second call (to leave work behind for
    later). The server's first call runs in a task of its own; later ones are answered in
    the read that delivered them, which then waits for the next frame."""

    def __init__(self) -> None:
        self.after: Callable[[], None] | None = None
        self.calls = 0

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo")

    async def execute(self, ctx: plugwire.ExecutionContext, request: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 2 and self.after is not None:
            self.after()
        return request


def _frame(message: dict[str, Any]) -> bytes:
    body = msgspec.msgpack.encode(message)
    return len(body).to_bytes(4, "big") + body


def _read_frame(sock: socket.socket) -> dict[str, Any]:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    size = int.from_bytes(exact(4), "big")
    answer: dict[str, Any] = msgspec.msgpack.decode(exact(size))
    return answer


class Host:
    """The host end of the socket pair, driven from a thread with blocking calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(10)

    def call(self, call_id: int) -> dict[str, Any]:
        self.sock.sendall(_frame({"type": "call", "id": call_id, "payload": {"n": call_id}}))
        return _read_frame(self.sock)


async def _serving(plugin: Echo) -> tuple[StdioServer, Host, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    server = StdioServer(PluginAdapter(plugin))
    transport, _ = await loop.connect_accepted_socket(lambda: server, theirs)
    host = Host(ours)
    hello = json.dumps({"type": "hello", "versions": [1], "codecs": ["msgpack"], "max_frame": 1 << 20}).encode()
    await asyncio.to_thread(ours.sendall, len(hello).to_bytes(4, "big") + hello)
    await asyncio.to_thread(ours.recv, 1 << 16)  # the handshake answer (JSON, as handshakes are)
    return server, host, transport


def _in_thread(loop: asyncio.AbstractEventLoop, work: Callable[[], Any]) -> asyncio.Future[Any]:
    """Run `work` in a thread; its result arrives through `call_soon_threadsafe` (the wake-up
    pipe), which the wait must hand to the loop."""
    done: asyncio.Future[Any] = loop.create_future()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:
            loop.call_soon_threadsafe(done.set_exception, exc)
        else:
            loop.call_soon_threadsafe(done.set_result, result)

    threading.Thread(target=run, daemon=True).start()
    return done


async def test_calls_one_after_another_are_read_without_a_loop_turn_each() -> None:
    loop = asyncio.get_running_loop()
    server, host, transport = await _serving(Echo())
    selector = loop._selector  # type: ignore[attr-defined]
    turns = 0
    select = selector.select

    def counted(timeout: float | None = None) -> Any:
        nonlocal turns
        turns += 1
        return select(timeout)

    selector.select = counted
    try:
        async with asyncio.timeout(30):
            answers = await _in_thread(loop, lambda: [host.call(i) for i in range(1, 51)])
    finally:
        del selector.select
        transport.close()
        host.sock.close()
    assert [a["payload"]["n"] for a in answers] == list(range(1, 51))
    assert [a["id"] for a in answers] == list(range(1, 51))
    # Each call through the loop would be at least one turn (50); waiting in the read, the
    # loop wakes only for the thread's result and the first frame.
    assert turns < 10, turns
    assert not server.done.done()


def _host_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `work` in a thread that tells the loop nothing: only what `work` does to the
    plugin's socket (or another file) can reach the waiting plugin."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(work()), daemon=True)
    thread.start()
    return thread, results


async def test_a_timer_set_by_a_call_fires_while_the_plugin_waits_for_the_next_frame() -> None:
    loop = asyncio.get_running_loop()
    plugin = Echo()
    fired: asyncio.Future[None] = loop.create_future()
    plugin.after = lambda: loop.call_later(0.05, fired.set_result, None)
    _, host, transport = await _serving(plugin)
    try:
        thread, answers = _host_thread(lambda: [host.call(1), host.call(2)])
        async with asyncio.timeout(30):
            await fired  # no frame follows the calls: only the timer can end the plugin's wait
        # (A wait that ignored the timer would block until pytest-timeout's alarm, whose
        # exception the transport would take as a fatal read error and close.)
        assert not transport.is_closing()
        thread.join(10)
        assert [a["id"] for a in answers[0]] == [1, 2]
    finally:
        transport.close()
        host.sock.close()


async def test_another_reader_of_the_loop_is_served_while_the_plugin_waits() -> None:
    loop = asyncio.get_running_loop()
    plugin = Echo()
    read_end, write_end = os.pipe()
    seen: asyncio.Future[bytes] = loop.create_future()

    def on_readable() -> None:
        loop.remove_reader(read_end)
        seen.set_result(os.read(read_end, 100))

    plugin.after = lambda: loop.add_reader(read_end, on_readable)
    _, host, transport = await _serving(plugin)

    def call_then_write() -> list[dict[str, Any]]:
        answers = [host.call(1), host.call(2)]
        os.write(write_end, b"elsewhere")
        return answers

    try:
        thread, answers = _host_thread(call_then_write)
        async with asyncio.timeout(30):
            assert await seen == b"elsewhere"
        assert not transport.is_closing()
        thread.join(10)
        assert [a["id"] for a in answers[0]] == [1, 2]
    finally:
        transport.close()
        host.sock.close()
        os.close(read_end)
        os.close(write_end)


def test_sigterm_stops_a_plugin_waiting_for_its_next_frame() -> None:
    driver = HandDriver([sys.executable, str(PLUGINS / "echo_plugin.py")])
    try:
        driver.hello()
        driver.send({"type": "call", "id": 1, "payload": {"text": "hi"}})
        assert driver.recv()["id"] == 1  # answered: the plugin now waits in its read
        driver.proc.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=20) == 0
        assert "stopping (SIGTERM)" in driver.stderr()
    finally:
        driver.close()


async def test_the_wait_is_left_off_in_debug_mode_and_for_pipes() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    read_end, write_end = os.pipe()
    try:
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, theirs)
        pipe, _ = await loop.connect_read_pipe(asyncio.Protocol, os.fdopen(read_end, "rb", 0))
        assert IdleWait.attach(loop, transport) is not None
        assert IdleWait.attach(loop, pipe) is None  # a pipe transport has no socket to read
        loop.set_debug(True)  # a callback that blocks would be reported as slow
        try:
            assert IdleWait.attach(loop, transport) is None
        finally:
            loop.set_debug(False)
        transport.close()
        pipe.close()
    finally:
        ours.close()
        os.close(write_end)
