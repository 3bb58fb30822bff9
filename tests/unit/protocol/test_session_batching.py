"""`_protocol/session.py`: the write-batching rule both ends share, against its plain path,
with no loop and no process. Any sequence of frames, reads from the peer and loop turns gives
the peer the same bytes in the same order either way; the batching rule sends the first frame
since the peer last wrote at once and every later frame of that turn in one write at its end.
The host's calls (`HostSession.send_call`, which applies the rule inline) follow it too."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plugwire._protocol import CallContext, EnvelopeCodec, HostSession, PluginMessage, Session


class Peer:
    """The writes a session makes, and the end-of-turn flushes it asked for (`on_hold`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.writes: list[bytes] = []
        self.flush_due = False
        session.on_hold = self.hold

    def hold(self) -> None:
        assert not self.flush_due, "one flush per turn"
        self.flush_due = True

    def push(self, frame: bytes) -> None:
        now = self.session.push(bytearray(frame))
        if now is not None:
            self.writes.append(bytes(now))

    def read(self) -> None:
        self.session.sent_since_read = False  # what a session's read does first

    def end_turn(self) -> None:
        if self.flush_due:
            self.flush_due = False
            held = self.session.take_held()
            if held is not None:
                self.writes.append(bytes(held))


# A step: a frame written (its bytes), the peer's bytes read ("read"), or the turn's end ("turn").
steps = st.lists(st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(["read", "turn"])), max_size=40)


def run(batching: bool, plan: list[bytes | str]) -> tuple[list[bytes], list[tuple[int, int]], int]:
    """The writes, per frame (writes before it, writes right after it), and `written`."""
    peer = Peer(Session(batching=batching))
    seen = []
    for step in plan:
        if step == "read":
            peer.read()
        elif step == "turn":
            peer.end_turn()
        else:
            before = len(peer.writes)
            peer.push(step if isinstance(step, bytes) else b"")
            seen.append((before, len(peer.writes)))
    peer.end_turn()
    return peer.writes, seen, peer.session.written


@given(steps)
def test_both_paths_send_the_same_bytes_in_the_same_order(plan: list[bytes | str]) -> None:
    frames = b"".join(step for step in plan if isinstance(step, bytes))
    plain, _, written_plain = run(False, plan)
    batched, _, written_batched = run(True, plan)
    assert b"".join(plain) == b"".join(batched) == frames
    assert written_plain == written_batched == len(frames)
    assert len(plain) == sum(isinstance(step, bytes) for step in plan)  # the plain path: one write each


@given(steps)
def test_batching_sends_the_first_frame_since_the_peer_wrote_at_once_and_the_rest_of_the_turn_together(
    plan: list[bytes | str],
) -> None:
    writes, seen, _ = run(True, plan)
    # Count, turn by turn, what the rule allows: at most one frame at once since the last read,
    # and at most one write for the frames held back in a turn.
    allowed = 0
    at_once_since_read = held_this_turn = False
    for step in plan:
        if step == "read":
            at_once_since_read = False
        elif step == "turn":
            allowed += held_this_turn
            held_this_turn = False
        elif not at_once_since_read and not held_this_turn:
            at_once_since_read = True
            allowed += 1
        else:
            held_this_turn = True
    allowed += held_this_turn
    assert len(writes) == allowed
    if any(isinstance(step, bytes) for step in plan):
        assert seen[0] == (0, 1)  # the very first frame goes out at once


def test_frames_made_inside_a_read_leave_at_its_end_and_other_work_due_holds_frames_back() -> None:
    session = Session()
    session.in_read = True
    assert session.push(bytearray(b"a")) is None
    assert session.push(b"b") is None
    session.in_read = False
    assert session.take_held() == b"ab"
    session.due = [object()]  # the loop has other callbacks in this turn
    held: list[bool] = []
    session.on_hold = lambda: held.append(True)
    assert session.push(b"c") is None
    assert held == [True]
    assert session.data_to_send() == b"c"
    assert session.data_to_send() == b""


# A step of the host: a call (its payload), a read from the plugin, or the turn's end.
host_steps = st.lists(st.one_of(st.binary(min_size=1, max_size=6), st.sampled_from(["read", "turn"])), max_size=30)


def host_run(batching: bool, plan: list[bytes | str]) -> tuple[list[bytes], int]:
    host = HostSession("p", batching=batching)
    host.start(EnvelopeCodec("msgpack", PluginMessage), 1 << 20)
    writes: list[bytes] = []
    host.write_now = host.write = lambda data: writes.append(bytes(data))
    flush_due = [False]

    def hold() -> None:
        flush_due[0] = True

    def end_turn() -> None:
        if flush_due[0]:
            flush_due[0] = False
            held = host.take_held()
            if held is not None:
                writes.append(bytes(held))

    host.on_hold = hold
    for step in plan:
        if step == "read":
            host.buffer_updated(0)  # (nothing in it: a read resets the rule all the same)
        elif step == "turn":
            end_turn()
        else:
            host.send_call(step if isinstance(step, bytes) else b"", CallContext(request_id="r"))
    end_turn()
    return writes, host.written


@given(host_steps)
def test_calls_batched_by_the_host_session_are_the_bytes_of_the_plain_path(plan: list[bytes | str]) -> None:
    plain, written_plain = host_run(False, plan)
    batched, written_batched = host_run(True, plan)
    assert b"".join(plain) == b"".join(batched)
    assert written_plain == written_batched == len(b"".join(plain))
    calls = sum(isinstance(step, bytes) for step in plan)
    assert len(plain) == calls
    assert len(batched) <= calls
