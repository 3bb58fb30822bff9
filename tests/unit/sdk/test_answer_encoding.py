"""A call's answer is encoded into its envelope in one pass: the same bytes and the same errors as before."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

import plugwire
from plugwire._codec import encode
from plugwire._protocol import EnvelopeCodec, PluginMessage, ResultMsg
from plugwire._sdk.adapter import PluginAdapter
from plugwire._sdk.stdio import StdioServer


class Point(msgspec.Struct):
    x: int
    label: str = ""


class Answers:
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="answers")

    async def execute(self, ctx: plugwire.ExecutionContext, request: dict[str, Any]) -> Any:
        kind = request["kind"]
        if kind == "point":
            return Point(x=request["n"], label="é")
        if kind == "big":
            return "z" * request["n"]
        if kind == "unencodable":
            return object()
        if kind == "raises":
            raise LookupError("no such thing")
        if kind == "sleeps":
            await asyncio.sleep(0)
            return {"slept": True}
        return request


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.writes = 0

    def write(self, data: Any) -> None:
        self.data += data
        self.writes += 1

    def is_closing(self) -> bool:
        return False


async def serving(codec: str, host_max_frame: int = 1 << 20) -> tuple[StdioServer, RecordingTransport]:
    server = StdioServer(PluginAdapter(Answers()))
    transport = RecordingTransport()
    server.connection_made(transport)
    hello = {"type": "hello", "versions": [1], "codecs": [codec], "max_frame": host_max_frame}
    body = json.dumps(hello).encode()
    server.data_received(len(body).to_bytes(4, "big") + body)
    transport.data.clear()
    return server, transport


def call_frame(codec: str, call_id: int, payload: dict[str, Any]) -> bytes:
    envelope = {"type": "call", "id": call_id, "payload": payload}
    body = msgspec.json.encode(envelope) if codec == "json" else msgspec.msgpack.encode(envelope)
    return len(body).to_bytes(4, "big") + body


def split(data: bytes) -> list[bytes]:
    frames = []
    while data:
        size = int.from_bytes(data[:4], "big")
        frames.append(bytes(data[: 4 + size]))
        data = data[4 + size :]
    return frames


async def answer(codec: str, payload: dict[str, Any], host_max_frame: int = 1 << 20) -> tuple[bytes, Any]:
    server, transport = await serving(codec, host_max_frame)
    server.data_received(call_frame(codec, 7, payload))
    for _ in range(3):
        await asyncio.sleep(0)
    (frame,) = split(bytes(transport.data))
    decoded = EnvelopeCodec(codec, PluginMessage).decode(frame[4:])  # type: ignore[arg-type]
    return frame, decoded


@pytest.mark.parametrize("codec", ["msgpack", "json"])
@pytest.mark.parametrize("payload", [{"kind": "point", "n": 3}, {"kind": "echo", "n": [1, 2]}, {"kind": "sleeps"}])
async def test_an_answer_frame_is_byte_for_byte_the_result_envelope_of_the_encoded_answer(
    codec: str, payload: dict[str, Any]
) -> None:
    frame, decoded = await answer(codec, payload)
    expected = {"point": Point(x=3, label="é"), "echo": payload, "sleeps": {"slept": True}}[payload["kind"]]
    envelopes = EnvelopeCodec(codec, PluginMessage)  # type: ignore[arg-type]
    assert frame == bytes(envelopes.frame(ResultMsg(id=7, payload=msgspec.Raw(encode(expected, codec)))))  # type: ignore[arg-type]
    assert isinstance(decoded, ResultMsg)
    assert decoded.id == 7


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_an_answer_that_cannot_be_encoded_is_an_execution_error_for_that_call(codec: str) -> None:
    _, decoded = await answer(codec, {"kind": "unencodable"})
    assert (decoded.id, decoded.code) == (7, plugwire.errors.ErrorCode.EXECUTION_FAILED)
    assert decoded.message.startswith("the plugin returned a value that cannot be encoded: cannot encode object")


async def test_an_answer_larger_than_the_hosts_frame_limit_is_refused_with_frame_too_large() -> None:
    _, decoded = await answer("msgpack", {"kind": "big", "n": 5000}, host_max_frame=1024)
    assert (decoded.id, decoded.code, decoded.retryable) == (7, plugwire.errors.ErrorCode.FRAME_TOO_LARGE, False)
    assert "exceeds the peer's limit of 1024 bytes" in decoded.message


async def test_an_exception_from_execute_is_an_execution_error_naming_it() -> None:
    _, decoded = await answer("msgpack", {"kind": "raises"})
    assert (decoded.id, decoded.code) == (7, plugwire.errors.ErrorCode.EXECUTION_FAILED)
    assert decoded.message == "LookupError: no such thing"


async def test_a_request_the_plugin_type_refuses_is_a_coded_request_error() -> None:
    class Typed(Answers):
        async def execute(self, ctx: plugwire.ExecutionContext, request: Point) -> Point:
            return request

    server = StdioServer(PluginAdapter(Typed()))
    transport = RecordingTransport()
    server.connection_made(transport)
    body = json.dumps({"type": "hello", "versions": [1], "codecs": ["msgpack"]}).encode()
    server.data_received(len(body).to_bytes(4, "big") + body)
    transport.data.clear()
    server.data_received(call_frame("msgpack", 3, {"x": "not a number"}))
    for _ in range(3):
        await asyncio.sleep(0)
    (frame,) = split(bytes(transport.data))
    decoded = EnvelopeCodec("msgpack", PluginMessage).decode(frame[4:])
    assert (decoded.id, decoded.code) == (3, plugwire.errors.ErrorCode.REQUEST_INVALID)
    assert "at field 'x'" in decoded.message


@pytest.mark.parametrize("codec", ["msgpack", "json"])
async def test_answers_gathered_in_one_read_keep_their_bytes_and_failures_between_them_stay_apart(
    codec: str, fast_paths: bool
) -> None:
    server, transport = await serving(codec, host_max_frame=1024)
    server.data_received(call_frame(codec, 99, {"kind": "echo"}))  # readies the eager starter
    for _ in range(3):
        await asyncio.sleep(0)
    transport.data.clear()
    transport.writes = 0
    payloads: list[dict[str, Any]] = [
        {"kind": "point", "n": 1},
        {"kind": "unencodable"},
        {"kind": "point", "n": 2},
        {"kind": "big", "n": 5000},
        {"kind": "echo", "n": 3},
    ]
    # Read outside any task, as the event loop delivers it: the calls run (and answer) in the read.
    burst = b"".join(call_frame(codec, i, p) for i, p in enumerate(payloads, start=1))
    read = asyncio.get_running_loop().call_soon(server.data_received, burst)
    await asyncio.sleep(0)
    assert not read.cancelled()
    if fast_paths:
        assert transport.writes == 1  # every answer of the read, failures included, in one write
    else:  # the plain path: each call in a task of its own, from the next turn; each answer alone
        for _ in range(3):
            await asyncio.sleep(0)
        assert transport.writes == 5
    frames = split(bytes(transport.data))
    envelopes = EnvelopeCodec(codec, PluginMessage)  # type: ignore[arg-type]
    decoded = [envelopes.decode(f[4:]) for f in frames]
    assert [d.id for d in decoded] == [1, 2, 3, 4, 5]

    def expected(call_id: int, value: Any) -> bytes:
        return bytes(envelopes.frame(ResultMsg(id=call_id, payload=msgspec.Raw(encode(value, codec)))))  # type: ignore[arg-type]

    assert frames[0] == expected(1, Point(x=1, label="é"))
    assert frames[2] == expected(3, Point(x=2, label="é"))
    assert frames[4] == expected(5, payloads[4])
    assert decoded[1].code == plugwire.errors.ErrorCode.EXECUTION_FAILED
    assert decoded[3].code == plugwire.errors.ErrorCode.FRAME_TOO_LARGE


async def test_a_request_type_the_codec_cannot_handle_fails_each_call_not_the_handshake() -> None:
    class Other(msgspec.Struct):
        y: int

    untagged = Point | Other  # two untagged Structs: a union msgspec cannot decode into
    server = StdioServer(PluginAdapter(Answers(), request_type=untagged))
    transport = RecordingTransport()
    server.connection_made(transport)
    body = json.dumps({"type": "hello", "versions": [1], "codecs": ["msgpack"]}).encode()
    server.data_received(len(body).to_bytes(4, "big") + body)
    (hello,) = split(bytes(transport.data))
    assert json.loads(hello[4:])["type"] == "hello"
    transport.data.clear()
    for call_id in (1, 2):
        server.data_received(call_frame("msgpack", call_id, {"kind": "echo"}))
        for _ in range(3):
            await asyncio.sleep(0)
    decoded = [EnvelopeCodec("msgpack", PluginMessage).decode(f[4:]) for f in split(bytes(transport.data))]
    assert [(d.id, d.code) for d in decoded] == [(i, plugwire.errors.ErrorCode.CONFIG_WRONG_TYPE) for i in (1, 2)]
