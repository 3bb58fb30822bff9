"""The asyncio adapters of the protocol sessions add no Python frame of their own to a call:
a read and a call run the session's methods themselves (`docs/hot-path.md`, "The protocol
sessions"). Counted with `sys.setprofile`, so a wrapper put back in between fails here
before it shows in the instruction counts."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from types import FrameType
from typing import Any

import msgspec

import plugwire
from plugwire._protocol import CallContext, EnvelopeCodec, HostMessage, PluginHello, ResultMsg, handshake_frame
from plugwire._sdk.adapter import PluginAdapter
from plugwire._sdk.stdio import StdioServer
from plugwire._transports._connection import HostConnection
from tests.support.standin_transport import RecordingTransport


def frames_of(module_suffix: str, work: Any) -> Counter[str]:
    """The Python functions of modules ending in `module_suffix` that `work()` runs, counted."""
    seen: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.endswith(module_suffix):
            seen[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return seen


async def test_a_call_and_the_read_of_its_answer_run_no_frame_of_the_host_adapter_but_the_write() -> None:
    conn = HostConnection("p")
    conn.connection_made(RecordingTransport())
    conn.send_hello(["msgpack"], {})
    conn.data_received(handshake_frame(PluginHello(version=1, codec="msgpack", info=plugwire.PluginInfo(name="p"))))
    assert conn.send_call == conn.session.send_call
    assert conn.buffer_updated == conn.session.buffer_updated
    assert conn.get_buffer == conn.session.get_buffer
    plugin_side = EnvelopeCodec("msgpack", HostMessage)
    answer = bytes(plugin_side.frame(ResultMsg(id=1, payload=msgspec.Raw(b"\xc0"))))
    futures: list[asyncio.Future[bytes]] = []

    def one_call() -> None:
        conn.session.sent_since_read = False  # as after the plugin's last answer
        futures.append(conn.send_call(b"\xc0", CallContext())[1])
        room = conn.get_buffer(-1)
        room[: len(answer)] = answer
        conn.buffer_updated(len(answer))

    assert frames_of("_transports/_connection.py", one_call) == Counter({"_write_now": 1})
    assert futures[0].result() == b"\xc0"


async def test_a_read_that_runs_a_call_runs_only_the_plugin_adapters_read_and_the_call_itself() -> None:
    server = StdioServer(PluginAdapter(_Echo()))
    transport = RecordingTransport()
    server.connection_made(transport)
    assert server.get_buffer == server.session.get_buffer
    hello = {"type": "hello", "versions": [1], "codecs": ["msgpack"], "max_frame": 1 << 20}
    server.data_received(_frame(json.dumps(hello).encode()))
    request = _frame(msgspec.msgpack.encode({"type": "call", "id": 1, "payload": {"n": 1}}))

    def one_read() -> None:
        room = server.get_buffer(-1)
        room[: len(request)] = request
        server.buffer_updated(len(request))

    seen = frames_of("_sdk/stdio.py", one_read)
    await asyncio.sleep(0)  # (the call finishes on its first step with the accelerators on)
    assert seen["buffer_updated"] == 1
    assert set(seen) <= {"buffer_updated", "_call", "_write", "_update_reading", "_hold"}
    assert seen["_call"] <= 1  # the coroutine of the call, when it started in the read
    assert transport.writes  # the hello's answer, and the call's once it ran


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


class _Echo:
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Any) -> Any:
        return request
