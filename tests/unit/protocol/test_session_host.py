"""`_protocol/host_session.py`: the host's protocol as a pure state machine, with no loop and
no process. Calls go out as bytes, answers come in as bytes, and the tokens the session was
handed record how each call ended."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugwire._protocol import (
    REMEMBERED_CANCELS,
    CallContext,
    CancelMsg,
    EnvelopeCodec,
    ErrorMsg,
    HostMessage,
    HostSession,
    PluginMessage,
    ResultMsg,
)
from plugwire.errors import ErrorCode, ProtocolError

SESSION_MODULES = ("framing.py", "messages.py", "session.py", "host_session.py", "plugin_session.py", "refusals.py")
PLUGIN_SIDE = EnvelopeCodec("msgpack", HostMessage)  # what a plugin decodes and encodes with
CTX = CallContext(request_id="r")


class Token:
    """A completion token with no loop: how a call ended."""

    def __init__(self) -> None:
        self.outcome: Any = None
        self.resolved = 0

    def done(self) -> bool:
        return self.resolved > 0

    def set_result(self, result: Any, /) -> None:
        self.resolved += 1
        self.outcome = result

    def set_exception(self, exception: BaseException, /) -> None:
        self.resolved += 1
        self.outcome = exception


def session(*, batching: bool = True) -> tuple[HostSession, list[bytes]]:
    """A session past its handshake; the list gets every write, in order."""
    host = HostSession("p", batching=batching)
    host.start(EnvelopeCodec("msgpack", PluginMessage), 1 << 20)
    writes: list[bytes] = []
    host.write_now = host.write = lambda data: writes.append(bytes(data))
    host.new_token = Token
    return host, writes


def answer(call_id: int, text: bytes = b"ok") -> bytes:
    return bytes(PLUGIN_SIDE.frame(ResultMsg(id=call_id, payload=msgspec.Raw(msgspec.msgpack.encode(text)))))


def refusal(call_id: int) -> bytes:
    return bytes(PLUGIN_SIDE.frame(ErrorMsg(id=call_id, code=ErrorCode.EXECUTION_FAILED, message="no")))


def sent_messages(writes: list[bytes]) -> list[Any]:
    """The messages in the bytes the host wrote."""
    data = b"".join(writes)
    messages = []
    while data:
        size = int.from_bytes(data[:4], "big")
        messages.append(PLUGIN_SIDE.decode(data[4 : 4 + size]))
        data = data[4 + size :]
    return messages


@pytest.mark.parametrize("module", SESSION_MODULES)
def test_the_protocol_session_modules_import_no_asyncio(module: str) -> None:
    source = (Path(__file__).resolve().parents[3] / "src" / "plugwire" / "_protocol" / module).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "selectors", "threading"}


def test_a_call_goes_out_as_a_frame_and_its_answer_resolves_its_token() -> None:
    host, writes = session()
    call_id, token = host.send_call(b"\xa1x", CTX)
    [message] = sent_messages(writes)
    assert (message.id, message.method, bytes(message.payload)) == (call_id, "execute", b"\xa1x")
    assert host.inflight == 1
    assert not token.done()
    host.data_received(answer(call_id))
    assert token.outcome == msgspec.msgpack.encode(b"ok")
    assert host.inflight == 0
    assert host.calls_started == 1


def test_an_error_answer_fails_the_token_with_the_coded_error() -> None:
    host, _ = session()
    call_id, token = host.send_call(b"\xc0", CTX)
    host.data_received(refusal(call_id))
    assert token.outcome.code == ErrorCode.EXECUTION_FAILED
    assert token.outcome.plugin == "p"


def test_receive_data_returns_the_answers_and_leaves_the_tokens_to_the_caller() -> None:
    host, _ = session()
    first, one = host.send_call(b"\xc0", CTX)
    second, two = host.send_call(b"\xc0", CTX)
    events = host.receive_data(answer(second, b"2") + refusal(first))
    assert [token for token, _ in events] == [two, one]
    assert events[0][1] == msgspec.msgpack.encode(b"2")
    assert isinstance(events[1][1], Exception)
    assert not one.done()
    assert not two.done()
    assert host.answers == []


def test_a_late_answer_to_a_cancelled_call_is_dropped_and_counted_late_an_unknown_id_stray() -> None:
    host, writes = session()
    call_id, token = host.send_call(b"\xc0", CTX)
    host.abandon(call_id)  # held back: the call went out since the plugin last wrote
    assert isinstance(sent_messages([*writes, host.data_to_send()])[-1], CancelMsg)
    host.data_received(answer(call_id))
    assert not token.done()
    assert (host.late_answers, host.stray_replies) == (1, 0)
    host.data_received(answer(call_id))  # a second one is not late any more: a duplicate
    host.data_received(answer(99))  # never sent
    assert (host.late_answers, host.stray_replies) == (1, 2)


def test_only_the_last_1024_cancels_are_remembered() -> None:
    host, _ = session()
    ids = [host.send_call(b"\xc0", CTX)[0] for _ in range(REMEMBERED_CANCELS + 1)]
    for call_id in ids:
        host.abandon(call_id)
    host.data_received(answer(ids[0]) + answer(ids[-1]))
    assert (host.late_answers, host.stray_replies) == (1, 1)


def test_closing_fails_nothing_itself_and_tells_which_frames_were_handed_out() -> None:
    host, writes = session()
    _first, _ = host.send_call(b"\xc0", CTX)  # goes out at once
    host.send_call(b"\xc0", CTX)  # held back: a frame went out since the plugin last wrote
    assert len(writes) == 1
    held = host.take_held()
    assert held is not None
    flushed = host.written - len(held)
    ends = [frame_end for _, frame_end, _, _ in host.close()]
    assert [end <= flushed for end in ends] == [True, False]
    assert host.pending == {}
    assert not host.open
    with pytest.raises(ProtocolError):
        host.send_call(b"\xc0", CTX)


def test_the_first_frame_is_the_handshake_until_the_session_starts() -> None:
    host = HostSession("p")
    seen: list[bytes] = []
    host.on_handshake = lambda envelope: seen.append(bytes(envelope))
    host.data_received(b"\x00\x00\x00\x02{}")
    assert seen == [b"{}"]


def test_a_frame_too_large_for_the_plugin_is_refused_before_anything_is_sent() -> None:
    host, writes = session()
    host.peer_max_frame = 16
    with pytest.raises(ProtocolError) as caught:
        host.send_call(b"\xc4\x40" + b"x" * 64, CTX)
    assert caught.value.code == ErrorCode.FRAME_TOO_LARGE
    assert (writes, host.pending, host.next_id, host.written) == ([], {}, 1, 0)


# -------------------------------------------------------------------- properties
_counts = st.integers(min_value=1, max_value=12)


@settings(max_examples=60, deadline=None)
@given(_counts, st.data())
def test_any_split_of_the_plugins_bytes_into_reads_gives_the_same_answers(calls: int, data: st.DataObject) -> None:
    host, _ = session()
    sent = [host.send_call(b"\xc0", CTX) for _ in range(calls)]
    order = data.draw(st.permutations(range(calls)))
    stream = b"".join(answer(sent[i][0], str(i).encode()) if i % 3 else refusal(sent[i][0]) for i in order)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=8)))
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        host.data_received(stream[start:stop])
    for i, (_, token) in enumerate(sent):
        assert token.resolved == 1
        if i % 3:
            assert token.outcome == msgspec.msgpack.encode(str(i).encode())
        else:
            assert token.outcome.code == ErrorCode.EXECUTION_FAILED
    assert host.pending == {}
    assert host.buffered == 0


_steps = st.lists(
    st.one_of(
        st.just(("send", 0)),
        st.tuples(st.just("answer"), st.integers(min_value=0, max_value=40)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=40)),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(_steps)
def test_any_interleaving_of_calls_answers_and_cancels_keeps_the_table_consistent(steps: list[tuple[str, int]]) -> None:
    host, _ = session()
    tokens: dict[int, Token] = {}
    waiting: set[int] = set()  # the model: sent, not answered, not given up
    given_up: set[int] = set()  # given up and not answered since
    answered_once: set[int] = set()
    late = stray = 0
    for kind, n in steps:
        if kind == "send":
            call_id, token = host.send_call(b"\xc0", CTX)
            tokens[call_id] = token
            waiting.add(call_id)
            continue
        call_id = n + 1
        if kind == "cancel":
            host.abandon(call_id)
            if call_id in waiting:
                waiting.discard(call_id)
                given_up.add(call_id)
            continue
        host.data_received(answer(call_id))
        if call_id in waiting:
            waiting.discard(call_id)
            answered_once.add(call_id)
        elif call_id in given_up:
            given_up.discard(call_id)
            late += 1
        else:
            stray += 1
    assert set(host.pending) == waiting
    assert list(host.pending) == sorted(waiting)  # in the order sent
    assert (host.late_answers, host.stray_replies) == (late, stray)
    for call_id, token in tokens.items():
        assert token.resolved == (call_id in answered_once)
    assert host.inflight == len(waiting)
    assert host.settled == len(tokens) - len(waiting) + late
