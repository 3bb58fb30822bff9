"""docs/protocol.md is enough to write a plugin: both directions proven with real processes."""

from __future__ import annotations

import sys

import msgspec
import pytest

from tests.support.procguard import PLUGINS, HandDriver, manager_for, python_plugin

pytestmark = pytest.mark.usefixtures("no_leaks")


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""


class Resp(msgspec.Struct):
    text: str
    op: str = ""


async def test_the_host_serves_a_plugin_written_from_the_document_without_plugwire() -> None:
    source = python_plugin("raw_plugin.py", "ok")
    async with manager_for(Req, Resp) as manager:
        await manager.register(source, name="raw")
        assert await manager.execute("raw", Req(text="by hand")) == Resp(text="by hand", op="echo")
        assert (await manager.health())["raw"].message == "raw"
        assert manager.get_plugin("raw").info().name == "raw"


def test_an_sdk_plugin_answers_hand_built_msgpack_frames() -> None:
    driver = HandDriver([sys.executable, str(PLUGINS / "echo_plugin.py")])
    try:
        hello = driver.hello(codecs=("msgpack",))
        assert hello["codec"] == "msgpack"  # the handshake itself is JSON
        body = msgspec.msgpack.encode({"type": "call", "id": 9, "payload": {"text": "packed"}, "ctx": {}})
        driver.send_bytes(len(body).to_bytes(4, "big") + body)
        size = int.from_bytes(driver._exact(4), "big")
        reply = msgspec.msgpack.decode(driver._exact(size))
        assert reply["type"] == "result"
        assert reply["id"] == 9
        assert reply["payload"]["text"] == "packed"
        driver.send_bytes(len(b := msgspec.msgpack.encode({"type": "shutdown", "grace": 1})).to_bytes(4, "big") + b)
        assert driver.wait() == 0
    finally:
        driver.close()


def test_an_sdk_plugin_answers_a_malformed_call_for_its_id_and_junk_for_id_0() -> None:
    driver = HandDriver([sys.executable, str(PLUGINS / "echo_plugin.py")])
    try:
        driver.hello(codecs=("msgpack",))

        def exchange(envelope: object) -> dict[str, object]:
            body = msgspec.msgpack.encode(envelope)
            driver.send_bytes(len(body).to_bytes(4, "big") + body)
            size = int.from_bytes(driver._exact(4), "big")
            reply: dict[str, object] = msgspec.msgpack.decode(driver._exact(size))
            return reply

        malformed = exchange({"type": "call", "id": 11, "payload": {"text": "x"}, "ctx": "not a map"})
        assert (malformed["type"], malformed["id"], malformed["code"]) == ("error", 11, 2003)
        junk = exchange(["not", "an", "envelope"])
        assert (junk["type"], junk["id"], junk["code"]) == ("error", 0, 2003)
        answer = exchange({"type": "call", "id": 12, "payload": {"text": "still here"}, "ctx": {}})
        assert (answer["type"], answer["id"]) == ("result", 12)  # the connection goes on
        driver.send_bytes(len(b := msgspec.msgpack.encode({"type": "shutdown", "grace": 1})).to_bytes(4, "big") + b)
        assert driver.wait() == 0
    finally:
        driver.close()
