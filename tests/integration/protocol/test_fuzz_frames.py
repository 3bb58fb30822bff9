"""Random and mutated frames to both ends of the wire, deep nesting included (hypothesis).

Every outcome must be a correct answer or a coded error: never an exception out of the
parser, a call left without its answer or its deadline, a plugin that exits with a traceback,
or one that stops answering. Bounded: a few hundred examples in all, well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import subprocess
import sys
import tempfile
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plugwire
from plugwire._errors import error_class_for_code
from plugwire._protocol import CallContext, PluginHello, handshake_frame
from plugwire._transports._connection import HostConnection
from tests.support.procguard import PLUGINS, plugin_env
from tests.support.standin_transport import RecordingTransport

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("no_leaks")]

CODES = {int(code) for code in plugwire.errors.ErrorCode}


def coded(error: BaseException) -> bool:
    """A plugwire error with one of its codes, or with a code the (fuzzed) plugin answered that
    plugwire does not define but whose family it knows: kept as the plugin said it, in that
    family's class (`error_from_code`; a code of no family becomes 1203 with `remote_code`)."""
    if not isinstance(error, plugwire.PluginError):
        return False
    return error.code in CODES or type(error) is error_class_for_code(error.code)


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def encoder(codec: str) -> Any:
    return msgspec.msgpack.encode if codec == "msgpack" else msgspec.json.encode


def nested(codec: str, depth: int) -> bytes:
    return b"\x91" * depth + b"\x90" if codec == "msgpack" else b"[" * depth + b"]" * depth


# Values of any shape, for fields that should hold something else.
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.binary(max_size=12),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def bodies(draw: st.DrawFn, codec: str, good: list[dict[str, Any]]) -> bytes:
    """One envelope body: well-formed, wrongly typed, mutated bytes, or nested too deep."""
    encode = encoder(codec)
    kind = draw(st.sampled_from(["good", "fields", "junk", "flip", "cut", "deep-alone", "deep-payload"]))
    base = encode(draw(st.sampled_from(good)))
    if kind == "good":
        return base
    if kind == "fields":  # a known type with wrongly typed or missing fields, unknown extras
        envelope = dict(draw(st.sampled_from(good)))
        for key in draw(st.lists(st.sampled_from(["id", "code", "message", "payload", "type", "x"]), max_size=3)):
            if draw(st.booleans()):
                envelope[key] = draw(_values)
            else:
                envelope.pop(key, None)
        return encode(envelope)
    if kind == "junk":
        return draw(st.binary(min_size=1, max_size=64))
    if kind == "flip":
        data = bytearray(base)
        for index, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=4)):
            data[index] = value
        return bytes(data)
    if kind == "cut":
        return base[: draw(st.integers(1, max(1, len(base) - 1)))]
    depth = draw(st.sampled_from([300, 1000, 3000, 20000]))
    if kind == "deep-alone":
        return nested(codec, depth)
    head = dict(draw(st.sampled_from(good)))
    head["payload"] = msgspec.Raw(nested(codec, depth))
    return encode(head)


# -------------------------------------------------------------- the host's parser

_PLUGIN_FRAMES = [
    {"type": "result", "id": 1, "payload": {"text": "one"}},
    {"type": "result", "id": 2, "payload": [1, 2]},
    {"type": "error", "id": 3, "code": 1203, "message": "failed", "retryable": True},
    {"type": "error", "id": 0, "code": 2003, "message": "connection-level"},
    {"type": "result", "id": 99, "payload": None},
]


async def _feed_host(codec: str, frames: list[bytes], cuts: list[int], wakeups: bool) -> None:
    conn = HostConnection("fuzz")
    conn.connection_made(RecordingTransport())
    conn.send_hello([codec], {})
    conn.data_received(handshake_frame(PluginHello(version=1, codec=codec, info=plugwire.PluginInfo(name="f"))))
    conn.session.deferring = wakeups
    loop = asyncio.get_running_loop()
    futures = {}
    for _ in range(4):
        call_id, future = conn.send_call(b"\xc0", CallContext(), loop.time() + 60, None)
        futures[call_id] = future
    stream = b"".join(framed(body) for body in frames)
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        conn.data_received(stream[start:cut])  # nothing may escape the parser
        start = max(start, cut)
    await asyncio.sleep(0)  # answers set aside during the read are woken by then
    for call_id, future in futures.items():
        if future.done():
            error = future.exception()
            assert error is None or coded(error), error
        else:  # still waiting: only on a live connection, with its deadline still watched
            assert conn.alive
            assert call_id in conn.session.pending
            assert conn._deadlines.armed
    if conn.buffered and conn.alive:  # a partial frame is watched for the rest
        assert conn._read_timer is not None
    if not conn.alive:
        lost = conn.lost.result()
        assert isinstance(lost, plugwire.PluginError)
        assert lost.code in CODES
    conn.close(plugwire.TransportError("end of example"))
    for future in futures.values():
        if future.done() and not future.cancelled():
            future.exception()


@pytest.mark.parametrize("codec", ["msgpack", "json"])
@pytest.mark.parametrize("wakeups", [True, False], ids=["wakeups", "plain"])
def test_the_host_parser_answers_every_frame_sequence_with_a_result_or_a_coded_error(codec: str, wakeups: bool) -> None:
    @FUZZ
    @given(
        frames=st.lists(bodies(codec, _PLUGIN_FRAMES), min_size=1, max_size=6),
        cuts=st.lists(st.integers(0, 400), max_size=3),
    )
    def run(frames: list[bytes], cuts: list[int]) -> None:
        asyncio.run(_feed_host(codec, frames, cuts, wakeups))

    run()


# ------------------------------------------------------------ a real Python plugin
class _Plugin:
    """A real `plugwire.serve` plugin on a socket pair; stderr goes to a file (never blocks)."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.encode = encoder(codec)
        self.decode = msgspec.msgpack.decode if codec == "msgpack" else msgspec.json.decode
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.sock, child = socket.socketpair()
        env = {"PATH": os.environ.get("PATH", ""), **plugin_env()}
        env.update(PLUGWIRE_MAGIC_COOKIE="8c2f9b1e4d7a4f6b-plugwire", PLUGWIRE_PROTOCOL_VERSIONS="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(PLUGINS / "typed_echo_plugin.py"), codec],
            stdin=child.fileno(),
            stdout=child.fileno(),
            stderr=self.stderr,
            env=env,
        )
        child.close()
        body = msgspec.json.encode({"type": "hello", "versions": [1], "codecs": [codec], "max_frame": 1 << 20})
        self.sock.sendall(framed(body))
        assert msgspec.json.decode(self.recv())["codec"] == codec
        self.next_id = 1_000_000

    def recv(self) -> bytes:
        size = int.from_bytes(self._exact(4), "big")
        return self._exact(size)

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            if not select.select([self.sock], [], [], 10.0)[0]:  # a hang is a failure, not a wait
                raise AssertionError(f"the plugin answered nothing within 10 s ({self.proc.poll()=})")
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def exchange(self, body: bytes) -> bool:
        """Send `body`, then a good call; True while the plugin keeps serving."""
        self.next_id += 1
        probe = self.next_id
        good = self.encode(
            {"type": "call", "id": probe, "payload": {"data": "aGk=" if self.codec == "json" else b"hi"}}
        )
        try:
            self.sock.sendall(framed(body) + framed(good))
            while True:
                reply = self.decode(self.recv())
                assert isinstance(reply, dict), reply
                assert reply.get("type") in ("result", "error"), reply
                if reply["type"] == "error":
                    assert reply["code"] in CODES, reply
                if reply.get("id") == probe:
                    assert reply["type"] == "result", reply
                    return True
        except (EOFError, ConnectionResetError, BrokenPipeError):
            status = self.proc.wait(10)
            # Only a frame that ends the connection on purpose (a shutdown that decoded) may stop it.
            assert status == 0, f"the plugin exited {status}: {self.stderr_text()[-2000:]}"
            return False

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        text = self.stderr_text()
        self.stderr.close()
        assert "Traceback" not in text, text[-3000:]


_HOST_FRAMES = [
    {"type": "call", "id": 5, "method": "execute", "payload": {"data": "eA=="}, "ctx": {}},
    {"type": "call", "id": 6, "method": "other", "payload": {}},
    {"type": "cancel", "id": 5},
    {"type": "health", "id": 7},
]


@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_a_python_plugin_answers_every_mutated_host_frame_with_a_coded_error_and_keeps_serving(codec: str) -> None:
    plugin = [_Plugin(codec)]
    try:

        @FUZZ
        @given(body=bodies(codec, _HOST_FRAMES))
        def run(body: bytes) -> None:
            if not plugin[0].exchange(body):
                plugin[0].close()
                plugin[0] = _Plugin(codec)

        run()
    finally:
        plugin[0].close()
