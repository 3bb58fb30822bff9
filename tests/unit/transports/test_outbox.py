"""`_transports/_outbox.py`: write coalescing against its plain path, with no loop and no
process: any sequence of frames, reads from the peer and loop turns gives the plugin the same
bytes in the same order either way; the batching one sends the first frame since the peer
last wrote at once and every later frame of that turn in one write at its end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugwire._transports._outbox import BatchingOutbox, Outbox
from tests.support.standin_transport import RecordingTransport

pytestmark = pytest.mark.fast_paths_only  # both strategies are built here by hand


class _Turns:
    """What the outbox asks of its loop: `call_soon`, run at `end_turn()`."""

    def __init__(self) -> None:
        self.due: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.due.append(callback)

    def end_turn(self) -> None:
        due, self.due = self.due, []
        for callback in due:
            callback()


class _Wakeups:
    left = 0


def outbox(kind: type[Outbox]) -> tuple[Outbox, RecordingTransport, _Turns]:
    turns = _Turns()
    box = kind(cast(Any, turns), _Wakeups())
    box.transport = transport = RecordingTransport()
    return box, transport, turns


# A step: a frame written (its bytes), the peer's bytes read ("read"), or the turn's end ("turn").
steps = st.lists(st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(["read", "turn"])), max_size=40)


def run(kind: type[Outbox], plan: list[bytes | str]) -> tuple[list[bytes], list[tuple[int, int]]]:
    """The writes the transport saw, and per frame (writes before it, writes right after it)."""
    box, transport, turns = outbox(kind)
    seen = []
    for step in plan:
        if step == "read":
            box.sent_since_read = False  # as the connection does when the plugin's bytes arrive
        elif step == "turn":
            turns.end_turn()
        else:
            before = len(transport.writes)
            box.write(cast(bytes, step))
            seen.append((before, len(transport.writes)))
    turns.end_turn()
    return transport.writes, seen


@given(steps)
def test_both_paths_send_the_same_bytes_in_the_same_order(plan: list[bytes | str]) -> None:
    frames = b"".join(step for step in plan if isinstance(step, bytes))
    plain, _ = run(Outbox, plan)
    batched, _ = run(BatchingOutbox, plan)
    assert b"".join(plain) == b"".join(batched) == frames
    assert len(plain) == sum(isinstance(step, bytes) for step in plan)  # the plain path: one write each


@given(steps)
def test_batching_sends_the_first_frame_since_the_peer_wrote_at_once_and_the_rest_of_the_turn_together(
    plan: list[bytes | str],
) -> None:
    writes, seen = run(BatchingOutbox, plan)
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
    first = next((i for i, step in enumerate(plan) if isinstance(step, bytes)), None)
    if first is not None:
        assert seen[0] == (0, 1)  # the very first frame goes out at once


def test_a_broken_connection_counts_held_frames_as_unflushed() -> None:
    box, transport, turns = outbox(BatchingOutbox)
    assert box.write(b"abcd")  # at once
    assert not box.write(b"efgh")  # held until the end of the turn
    assert box.written == 8
    assert box.unflushed() == 4  # the held frame never reached the transport
    turns.end_turn()
    assert transport.writes == [b"abcd"]  # dropped, not sent after the break
