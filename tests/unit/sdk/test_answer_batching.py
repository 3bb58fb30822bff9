"""The plugin side batches answers to a burst of calls into one write, and never delays a lone one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

import plugwire
from plugwire._sdk.adapter import PluginAdapter
from plugwire._sdk.stdio import StdioServer


class Echo:
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo")

    async def execute(self, ctx: plugwire.ExecutionContext, request: dict[str, Any]) -> dict[str, Any]:
        return request


class SuspendingEcho(Echo):
    async def execute(self, ctx: plugwire.ExecutionContext, request: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)  # answered in a later loop turn, outside the read
        return request


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def call(call_id: int) -> bytes:
    return frame(msgspec.msgpack.encode({"type": "call", "id": call_id, "payload": {"n": call_id}}))


def answers(data: bytes) -> list[int]:
    ids = []
    while data:
        size = int.from_bytes(data[:4], "big")
        ids.append(msgspec.msgpack.decode(data[4 : 4 + size])["id"])
        data = data[4 + size :]
    return ids


async def serving(plugin: Echo | None = None) -> tuple[StdioServer, RecordingTransport]:
    server = StdioServer(PluginAdapter(plugin or Echo()))
    transport = RecordingTransport()
    server.connection_made(transport)
    hello = {"type": "hello", "versions": [1], "codecs": ["msgpack"], "max_frame": 1 << 20}
    server.data_received(frame(json.dumps(hello).encode()))
    transport.writes.clear()
    return server, transport


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.mark.fast_paths_only  # write coalescing itself
async def test_answers_to_calls_read_together_inside_a_task_leave_in_one_write_as_from_a_callback() -> None:
    server, transport = await serving()
    server.data_received(b"".join(call(i) for i in range(1, 7)))  # (inside the test's task)
    assert [answers(w) for w in transport.writes] == [[1, 2, 3, 4, 5, 6]]  # each ran at once
    await settle()
    assert len(transport.writes) == 1


@pytest.mark.fast_paths_only  # write coalescing itself
async def test_answers_to_calls_that_suspended_leave_in_two_writes_not_one_each() -> None:
    server, transport = await serving(SuspendingEcho())
    server.data_received(b"".join(call(i) for i in range(1, 7)))
    await settle()
    assert [len(answers(w)) for w in transport.writes] == [1, 5]
    assert sorted(i for w in transport.writes for i in answers(w)) == [1, 2, 3, 4, 5, 6]


async def test_calls_read_one_at_a_time_are_each_answered_at_once() -> None:
    server, transport = await serving()
    for call_id in range(1, 4):
        server.data_received(call(call_id))
        await settle()
        assert answers(transport.writes[-1]) == [call_id]
    assert len(transport.writes) == 3


@pytest.mark.fast_paths_only  # write coalescing itself
async def test_answers_to_calls_finished_within_their_read_leave_in_one_write_right_after_it() -> None:
    server, transport = await serving()
    loop = asyncio.get_running_loop()
    loop.call_soon(server.data_received, call(100))  # a first call, answered on its own
    await settle()
    transport.writes.clear()
    read = loop.create_future()

    def deliver() -> None:  # as the event loop delivers a read: outside any task
        server.data_received(b"".join(call(i) for i in range(1, 7)))
        read.set_result([answers(w) for w in transport.writes])

    loop.call_soon(deliver)
    assert await read == [[1, 2, 3, 4, 5, 6]]  # written before the read returned, all at once
    await settle()
    assert len(transport.writes) == 1
