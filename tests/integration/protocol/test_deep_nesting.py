"""A frame nested deeper than a decoder goes is one bad frame: refused with 2003 by both
ends, and it never disturbs another call's answer or deadline (issue 15, items 15 and 16)."""

from __future__ import annotations

import asyncio
import sys

import msgspec
import pytest

import plugwire
from plugwire._codec import TypedCodec
from plugwire._protocol import CallContext, PluginHello, handshake_frame
from plugwire._transports._connection import HostConnection
from tests.support.procguard import PLUGINS, HandDriver, manager_for, python_plugin
from tests.support.standin_transport import RecordingTransport

pytestmark = pytest.mark.faults

DEEP = 100_000  # deeper than any decoder goes (the C recursion limit is about 10000 on 3.13)


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""


class Resp(msgspec.Struct):
    text: str = ""
    pid: object = 0


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def deep_msgpack(depth: int = DEEP) -> bytes:
    return b"\x91" * depth + b"\x90"  # [[[...]]]


def deep_result(call_id: int) -> bytes:
    head = msgspec.msgpack.encode({"type": "result", "id": call_id})
    # The same map with a third entry: "payload" nested `DEEP` levels (fixmap of 2 -> of 3).
    return framed(b"\x83" + head[1:] + msgspec.msgpack.encode("payload") + deep_msgpack())


def result(call_id: int, payload: object = "ok") -> bytes:
    return framed(msgspec.msgpack.encode({"type": "result", "id": call_id, "payload": payload}))


async def connected(*, wakeups: bool) -> HostConnection:
    conn = HostConnection("p")
    conn.connection_made(RecordingTransport())
    conn.send_hello(["msgpack"], {})
    conn.data_received(handshake_frame(PluginHello(version=1, codec="msgpack", info=plugwire.PluginInfo(name="p"))))
    conn.session.deferring = wakeups  # with and without the wake-up fast path (`_wakeups.py`)
    return conn


# ------------------------------------------------------------------ the host's parser
@pytest.mark.parametrize("wakeups", [True, False], ids=["wakeups", "plain"])
@pytest.mark.parametrize("split", [False, True], ids=["one-read", "two-reads"])
async def test_a_too_deep_answer_breaks_the_connection_with_2003_and_answers_read_before_it_arrive(
    wakeups: bool, split: bool
) -> None:
    conn = await connected(wakeups=wakeups)
    loop = asyncio.get_running_loop()
    first = conn.send_call(b"\xc0", CallContext(), loop.time() + 30, None)[1]
    second = conn.send_call(b"\xc0", CallContext(), loop.time() + 30, None)[1]
    data = result(1) + deep_result(2)
    if split:
        conn.data_received(data[:7])
        conn.data_received(data[7:])
    else:
        conn.data_received(data)  # the good answer and the bad frame in the same read
    assert await asyncio.wait_for(first, 5) == msgspec.msgpack.encode("ok")
    # (1207 or 1302: whether its frame had left the write buffer; either way caused by 2003)
    with pytest.raises((plugwire.OutcomeUnknownError, plugwire.TransportError)) as caught:
        await asyncio.wait_for(second, 5)
    cause = caught.value.__cause__
    assert isinstance(cause, plugwire.errors.ProtocolError)
    assert cause.code == plugwire.errors.ErrorCode.ENVELOPE_INVALID
    assert "nested deeper" in cause.message
    assert (await conn.lost).code == plugwire.errors.ErrorCode.ENVELOPE_INVALID


async def test_a_too_deep_handshake_answer_fails_the_start_with_a_coded_error() -> None:
    conn = HostConnection("p")
    conn.connection_made(RecordingTransport())
    conn.send_hello(["json"], {})
    conn.data_received(framed(b"[" * DEEP + b"]" * DEEP))
    error = await conn.lost
    assert error.code == plugwire.errors.ErrorCode.HANDSHAKE_FAILED
    with pytest.raises(plugwire.errors.ProtocolError):
        await conn.handshake


async def test_a_too_deep_answer_payload_is_a_coded_validation_error() -> None:
    codec: TypedCodec[list[object]] = TypedCodec(list[object], "msgpack", role="response")
    with pytest.raises(plugwire.errors.ResponseValidationError, match="nested deeper"):
        codec.decode(deep_msgpack())


# ------------------------------------------------------- real processes, both ends
async def test_a_deep_answer_from_a_plugin_fails_its_call_and_the_call_answered_with_it_returns() -> None:
    config = plugwire.PluginConfig(
        name="raw",
        retry=plugwire.RetryConfig(max_retries=0),
        circuit_breaker=plugwire.CircuitBreakerConfig(enabled=False),
        connection=plugwire.ConnectionConfig(max_connections=1, request_timeout=30.0),
    )
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("raw_plugin.py", "deep-answer"), config=config)
        held = asyncio.ensure_future(manager.execute("raw", Req(op="hold", text="held")))
        await asyncio.sleep(0.05)  # (only orders the two requests; nothing waits on time)
        with pytest.raises(plugwire.OutcomeUnknownError) as caught:
            await manager.execute("raw", Req(op="deep"))
        assert isinstance(caught.value.__cause__, plugwire.errors.ProtocolError)
        assert caught.value.__cause__.code == plugwire.errors.ErrorCode.ENVELOPE_INVALID
        # Written before the deep frame in the same write: delivered, not left to hang.
        assert (await asyncio.wait_for(held, 10)).text == "held"
        # The supervisor restarts the process; the plugin serves again.
        assert (await manager.execute("raw", Req(text="again"))).text == "again"


@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_an_sdk_plugin_answers_a_too_deep_host_frame_with_2003_and_carries_on(codec: str) -> None:
    driver = HandDriver([sys.executable, str(PLUGINS / "echo_plugin.py")])
    encode = msgspec.msgpack.encode if codec == "msgpack" else msgspec.json.encode
    decode = msgspec.msgpack.decode if codec == "msgpack" else msgspec.json.decode
    nested = deep_msgpack() if codec == "msgpack" else b"[" * DEEP + b"]" * DEEP

    def exchange(body: bytes) -> dict[str, object]:
        driver.send_bytes(framed(body))
        size = int.from_bytes(driver._exact(4), "big")
        reply: dict[str, object] = decode(driver._exact(size))
        return reply

    try:
        assert driver.hello(codecs=(codec,))["codec"] == codec
        deep_envelope = exchange(nested)
        assert (deep_envelope["type"], deep_envelope["id"], deep_envelope["code"]) == ("error", 0, 2003)
        # A call whose request payload is nested too deep: refused for its id (1205).
        call = encode({"type": "call", "id": 7, "payload": msgspec.Raw(nested), "ctx": {}})
        deep_payload = exchange(call)
        assert deep_payload["type"] == "error"
        assert deep_payload["code"] in (2003, 1205)
        answer = exchange(encode({"type": "call", "id": 8, "payload": {"text": "still here"}, "ctx": {}}))
        assert (answer["type"], answer["id"]) == ("result", 8)  # the plugin carries on
        exchange_shutdown = encode({"type": "shutdown", "grace": 1})
        driver.send_bytes(framed(exchange_shutdown))
        assert driver.wait() == 0
        assert "Traceback" not in driver.stderr()
    finally:
        driver.close()


async def test_a_frame_refused_at_the_recursion_limit_stays_refused_if_decoding_it_again_succeeds() -> None:
    # How deep msgspec goes depends on the stack it runs on (in a caller's task when reading
    # ahead): the frame the fast path refused is never dropped without a word.
    conn = await connected(wakeups=True)
    future = conn.send_call(b"\xc0", CallContext(), None, None)[1]
    conn.session._bad_envelope(memoryview(msgspec.msgpack.encode({"type": "result", "id": 1, "payload": 1})))
    assert (await conn.lost).code == plugwire.errors.ErrorCode.ENVELOPE_INVALID
    with pytest.raises(plugwire.PluginError):
        await future
