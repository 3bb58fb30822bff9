"""`_protocol/plugin_session.py`: the plugin's protocol as a pure state machine, with no loop
and no process. The host's bytes go in; the calls it asks for, the refusals, the cancels and
the answers' bytes come out."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from plugwire._protocol import (
    CallContext,
    CallMsg,
    CancelMsg,
    EnvelopeCodec,
    ErrorMsg,
    HealthMsg,
    HostMessage,
    PluginMessage,
    PluginSession,
    ResultMsg,
    ShutdownMsg,
)
from plugwire.errors import ErrorCode

HOST_SIDE = EnvelopeCodec("msgpack", PluginMessage)  # what a host encodes and decodes with
CTX = CallContext(request_id="r")
NOW = b"\xa3now"  # (msgpack "now") a payload whose call finishes in its first step


class Owner:
    """What a plugin session asks of its owner, recorded. A call whose payload is `NOW`
    finishes in its first step (and answers in the read); any other keeps running."""

    def __init__(self, session: PluginSession) -> None:
        self.session = session
        self.started: list[tuple[str, int, bytes]] = []
        self.cancelled: list[int] = []
        self.shutdown: list[float] = []
        self.writes: list[bytes] = []
        session.run_call = lambda call_id, payload, ctx: ("call", call_id, payload)
        session.run_health = lambda call_id: ("health", call_id, b"")
        session.start_work = self.start
        session.cancel = lambda call_id, token: self.cancelled.append(call_id)
        session.on_shutdown = self.shutdown.append
        session.write = lambda data: self.writes.append(bytes(data))

    def start(self, work: tuple[str, int, bytes]) -> Any:
        self.started.append(work)
        _kind, call_id, payload = work
        if payload == NOW:
            self.session.send(ResultMsg(id=call_id, payload=msgspec.Raw(b"\xa3now")))
            return None  # finished already: not tracked
        return work


def serving(*, batching: bool = True) -> tuple[PluginSession, Owner]:
    session = PluginSession(batching=batching)
    session.start(EnvelopeCodec("msgpack", HostMessage), 1 << 20)
    return session, Owner(session)


def frame(message: Any) -> bytes:
    return bytes(HOST_SIDE.frame(message))


def call(call_id: int, payload: bytes = b"\xc0", method: str = "execute") -> bytes:
    return frame(CallMsg(call_id, msgspec.Raw(payload), method, CTX))


def answers(data: bytes) -> list[Any]:
    messages = []
    while data:
        size = int.from_bytes(data[:4], "big")
        messages.append(HOST_SIDE.decode(data[4 : 4 + size]))
        data = data[4 + size :]
    return messages


def test_calls_are_started_with_their_payloads_and_tracked_until_finished() -> None:
    session, owner = serving()
    assert session.receive_data(call(1, b"\xa1a") + call(2, b"\xa1b")) == b""
    assert owner.started == [("call", 1, b"\xa1a"), ("call", 2, b"\xa1b")]
    assert set(session.running) == {1, 2}
    assert session.finish(1)
    assert not session.finish(1)
    assert set(session.running) == {2}


def test_a_duplicate_id_an_unknown_method_and_a_call_while_stopping_are_refused_at_once() -> None:
    session, owner = serving()
    session.receive_data(call(1))
    out = session.receive_data(call(1) + call(2, method="other") + frame(HealthMsg(id=1)))
    session.stopping = True
    out += session.receive_data(call(3))
    refused = answers(out)
    assert [(m.id, m.code) for m in refused] == [
        (1, ErrorCode.ENVELOPE_INVALID),
        (2, ErrorCode.UNKNOWN_METHOD),
        (1, ErrorCode.ENVELOPE_INVALID),
        (3, ErrorCode.PLUGIN_STOPPING),
    ]
    assert refused[-1].retryable
    assert owner.started == [("call", 1, b"\xc0")]


def test_a_cancel_reaches_a_running_call_once_and_is_remembered_until_it_finishes() -> None:
    session, owner = serving()
    session.receive_data(call(7) + frame(CancelMsg(id=7)) + frame(CancelMsg(id=8)))
    assert owner.cancelled == [7]  # 8 is not running: nothing to cancel
    assert session.cancelled_by_host == {7}
    session.finish(7)
    assert session.cancelled_by_host == set()


def test_health_and_shutdown_reach_the_owner() -> None:
    session, owner = serving()
    session.receive_data(frame(HealthMsg(id=4)) + frame(ShutdownMsg(grace=2.5)))
    assert owner.started == [("health", 4, b"")]
    assert owner.shutdown == [2.5]


def test_an_undecodable_frame_is_answered_for_its_id_and_reading_goes_on() -> None:
    session, owner = serving()
    bad = msgspec.msgpack.encode({"type": "call", "id": 5, "method": 1})
    out = session.receive_data(len(bad).to_bytes(4, "big") + bad + call(6))
    [refusal] = answers(out)
    assert isinstance(refusal, ErrorMsg)
    assert refusal.id == 5
    assert owner.started == [("call", 6, b"\xc0")]


def test_the_answers_of_one_read_leave_in_one_write_after_it() -> None:
    session, owner = serving()
    out = session.receive_data(call(1, NOW) + call(2, NOW) + call(3, NOW))
    assert [m.id for m in answers(out)] == [1, 2, 3]
    assert owner.writes == []  # none went out alone during the read
    # On the plain path each answer is written as it is made, and the bytes are the same.
    plain, plain_owner = serving(batching=False)
    assert plain.receive_data(call(1, NOW) + call(2, NOW) + call(3, NOW)) == b""
    assert b"".join(plain_owner.writes) == out
    assert len(plain_owner.writes) == 3


def test_an_answer_too_large_for_the_host_is_replaced_by_the_error_saying_so() -> None:
    session, owner = serving(batching=False)
    session.peer_max_frame = 32
    session.send(ResultMsg(id=9, payload=msgspec.Raw(msgspec.msgpack.encode("x" * 100))))
    [error] = answers(b"".join(owner.writes))
    assert (error.id, error.code) == (9, ErrorCode.FRAME_TOO_LARGE)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([NOW, b"\xc0"]), min_size=1, max_size=10), st.data())
def test_any_split_of_the_hosts_bytes_into_reads_starts_the_same_calls_and_answers_the_same(
    payloads: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(call(i + 1, payload) for i, payload in enumerate(payloads))
    whole, whole_owner = serving()
    expected = whole.receive_data(stream)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=8)))
    split, split_owner = serving()
    out = b"".join(split.receive_data(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True))
    assert split_owner.started == whole_owner.started
    assert out == expected
    assert [m.id for m in answers(out)] == [i + 1 for i, p in enumerate(payloads) if p == NOW]
    assert set(split.running) == {i + 1 for i, p in enumerate(payloads) if p != NOW}
