"""The host's end of protocol v1 as a state machine: calls out, answers in, no I/O.

`HostSession` allocates call ids, encodes `call`, `cancel`, `health` and `shutdown` frames,
keeps the table of pending calls (each call's completion token, where its frame ends in what
was written, its deadline and its `Call`), and matches every answer to its call. An answer
for a call that left the table unanswered (timed out, abandoned) is late: expected, dropped
and counted; one for an id never sent, or answered already, is stray: counted and logged.
The last 1024 such ids are remembered (`REMEMBERED_CANCELS`).

It resolves the tokens it was handed (`Token`: in the asyncio adapter, the call's future),
or, while `deferring`, sets each answer aside in `answers` for its owner to deliver after the
read (`_transports/_wakeups.py`); `receive_data` returns them the same way, for tests and
tooling. The adapter (`_transports/_connection.py`) supplies what needs a loop: new tokens,
the write of a frame that goes out now, the deadline timer, what happens when it breaks.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable
from typing import Any, Final, Protocol

import msgspec

from .._errors import ProtocolError, error_from_code
from .._errors import answered as _answered
from .messages import (
    DEFAULT_MAX_FRAME,
    CallContext,
    CallMsg,
    CancelMsg,
    EnvelopeCodec,
    ErrorMsg,
    HealthMsg,
    ResultMsg,
    ShutdownMsg,
)
from .messages import too_deep as _too_deep
from .session import Session, Token

__all__ = ["REMEMBERED_CANCELS", "HostSession", "Pending"]

_Raw = msgspec.Raw
_log = logging.getLogger("plugwire.transport.subprocess")

REMEMBERED_CANCELS: Final = 1024
"""Ids of calls that left the table unanswered, remembered to tell a late answer from a stray one."""


Pending = tuple[Any, int, "float | None", Any]
"""A sent call the session waits on: its token, its frame's end (`Session.written` once the
frame was handed out: it reached the plugin if that many bytes did), its deadline (None:
none) and its `Call` (a plain tuple: built on every call)."""


class _Deadlines(Protocol):
    armed_at: float

    def arm(self, deadline: float) -> None: ...


class _NoDeadlines:
    armed_at = -math.inf  # no deadline is earlier: never armed

    def arm(self, deadline: float) -> None:  # pragma: no cover (never called)
        raise AssertionError


def _refuse() -> BaseException:
    return ProtocolError("the session is closed")


class HostSession(Session):
    """The host's protocol state for one connection.

    Args:
        name: The plugin's name (for errors and logs).
        max_frame: The largest frame accepted from the plugin.
        batching: The batching rule on (`Session.push`), else each frame goes out at once.
    """

    def __init__(self, name: str, *, max_frame: int = DEFAULT_MAX_FRAME, batching: bool = True) -> None:
        super().__init__(max_frame, batching=batching)
        self.name = name
        #: Every call sent and not answered, by id, in the order sent.
        self.pending: dict[int, Pending] = {}
        self.cancelled: collections.OrderedDict[int, None] = collections.OrderedDict()
        #: The id the next call gets.
        self.next_id = 1
        #: Health checks sent, and those still waiting for their answer.
        self.control_calls = 0
        self.controls_pending = 0
        #: Answers for ids never sent or answered already; answers to calls given up.
        self.stray_replies = 0
        self.late_answers = 0
        #: Whether answers are set aside in `answers` instead of resolving their tokens.
        self.deferring = False
        #: (token, answer) pairs set aside: the payload's bytes, or the error the call fails with.
        self.answers: list[tuple[Any, Any]] = []
        #: False once closed (`close`): `send_call` then raises `refuse()`.
        self.open = True
        # What the adapter supplies (the defaults are what a test without a loop needs).
        #: A new completion token for a call.
        self.new_token: Callable[[], Token] = _default_token
        #: Writes a call's frame that goes out now (or the frames held back, together).
        self.write_now: Callable[[bytearray | bytes], None] = _discard
        #: Writes any other frame that goes out now (`cancel`, `health`, `shutdown`).
        self.write: Callable[[bytearray | bytes], object] = _discard
        #: The error `send_call` raises once closed.
        self.refuse: Callable[[], BaseException] = _refuse
        #: Where a new call's deadline is armed, when earlier than `armed_at`.
        self.deadlines: _Deadlines = _NoDeadlines()
        #: The plugin's handshake frame (the adapter checks it and calls `start`).
        self.on_handshake: Callable[[memoryview], None] = _ignore_frame
        #: A protocol error that breaks the connection.
        self.on_error: Callable[[ProtocolError], None] = _ignore_error
        #: Answers were set aside in a read, while `deferring` (the adapter wakes their callers).
        self.on_answers: Callable[[], None] | None = None
        #: A read ended in the middle of a frame.
        self.on_partial: Callable[[], None] | None = None
        #: A call left the table unanswered (timed out, abandoned).
        self.on_gave_up: Callable[[], None] = _nothing
        self._decode: Callable[[memoryview], Any] | None = None
        self._append_frame: Callable[[Any, bytearray, int], None] | None = None

    def start(self, envelopes: EnvelopeCodec, peer_max_frame: int) -> None:
        """The handshake is done: `envelopes` encodes and decodes (`PluginMessage` in), and
        the plugin accepts frames up to `peer_max_frame` bytes."""
        self.envelopes = envelopes
        self.peer_max_frame = peer_max_frame
        self._decode = envelopes.raw_decoder
        self._append_frame = envelopes.append_frame

    @property
    def inflight(self) -> int:
        """Calls sent and not yet answered (health checks not counted)."""
        return max(len(self.pending) - self.controls_pending, 0)

    @property
    def calls_started(self) -> int:
        """Calls sent so far (health checks not counted)."""
        return self.next_id - 1 - self.control_calls

    @property
    def settled(self) -> int:
        """Calls sent so far minus those still pending, plus late answers (for the stall watch)."""
        return self.next_id - 1 - len(self.pending) + self.late_answers

    # ------------------------------------------------------------------ calls
    def send_call(
        self, payload: bytes, ctx: CallContext, deadline: float | None = None, call: Any = None
    ) -> tuple[int, Any]:
        """Send one call: its id and the token its answer resolves.

        Raises:
            BaseException: `refuse()` once closed.
            ProtocolError: The request is larger than the plugin accepts (2001).
        """
        if not self.open:
            raise self.refuse()
        append = self._append_frame
        assert append is not None, "call before the handshake"
        call_id = self.next_id
        message = CallMsg(call_id, _Raw(payload), "execute", ctx)
        corked = self.corked
        if corked is not None:  # joins the frames held back: encoded in place, no copy
            before = len(corked)
            append(message, corked, self.peer_max_frame)
            self.written += len(corked) - before
            frame = None
        else:
            frame = bytearray()
            append(message, frame, self.peer_max_frame)
            # `push` inlined (the same rule, `Session.push`): a frame fewer on every call.
            self.written += len(frame)
            if self.batching and (self.sent_since_read or self.waking.left or self.due):
                self.corked = frame
                frame = None
                self.on_hold()
            else:
                self.sent_since_read = True
        self.next_id = call_id + 1
        token = self.new_token()
        self.pending[call_id] = (token, self.written, deadline, call)
        if deadline is not None and deadline < self.deadlines.armed_at:
            self.deadlines.arm(deadline)  # (in steady traffic the timer is set for an earlier call)
        if frame is not None:  # after the table has it: the write may read its answer at once
            self.write_now(frame)
        return call_id, token

    def send_control(self, kind: type[HealthMsg] = HealthMsg) -> tuple[int, Any]:
        """Send a control call (`health`): its id and token; `finish_control` when it is over."""
        if not self.open:
            raise self.refuse()
        call_id = self.next_id
        self.next_id = call_id + 1
        self.control_calls += 1
        self.controls_pending += 1
        token = self.new_token()
        frame = self.frame_of(kind(id=call_id))
        self.pending[call_id] = (token, self.written + len(frame), None, None)
        self._send(frame)
        return call_id, token

    def finish_control(self, call_id: int) -> None:
        """The control call `call_id` is over (answered, or its caller gave up: then its
        answer, when it comes, is late)."""
        self.controls_pending -= 1
        if self.pending.pop(call_id, None) is not None:
            self._remember_cancel(call_id)

    def abandon(self, call_id: int) -> Pending | None:
        """Its caller stopped waiting: forget call `call_id`, and tell the plugin (`cancel`).
        Returns its entry if it was still pending."""
        pending = self.pending.pop(call_id, None)
        if pending is not None:
            self._remember_cancel(call_id)
            if self.open and self.envelopes is not None:
                self._send(self.frame_of(CancelMsg(id=call_id)))
        return pending

    def send_shutdown(self, grace: float) -> None:
        """Ask the plugin to stop within `grace` seconds."""
        if self.open and self.envelopes is not None:
            self._send(self.frame_of(ShutdownMsg(grace=grace)))

    def _send(self, frame: bytearray | bytes) -> None:
        now = self.push(frame)
        if now is not None:
            self.write(now)

    def _remember_cancel(self, call_id: int) -> None:
        self.cancelled[call_id] = None
        if len(self.cancelled) > REMEMBERED_CANCELS:
            self.cancelled.popitem(last=False)
        self.on_gave_up()

    def close(self) -> list[Pending]:
        """Closed (the connection broke, or on purpose): the calls still pending, taken out
        of the table (a call's frame reached the plugin if its `frame_end` is within the bytes
        that did: `written` less `take_held()` and what the adapter could not write)."""
        self.open = False
        self.stop_reading_frames()
        pending = list(self.pending.values())
        self.pending.clear()
        return pending

    # ----------------------------------------------------------------- answers
    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` more bytes were read into `get_buffer()`'s buffer."""
        self.sent_since_read = False
        try:
            # `FrameReader.buffer_updated` inlined: a frame fewer per read (docs/hot-path.md).
            self._end += nbytes
            if not self.broken:
                self._parse()
        finally:
            # Answers read before anything went wrong are delivered whatever happened after
            # them: they already left `pending`, so no deadline would ever fail them.
            if self.answers and self.on_answers is not None:
                self.on_answers()
        if self._end != self._start and self.on_partial is not None:  # rare: a frame split across reads
            self.on_partial()

    def receive_data(self, data: bytes) -> list[tuple[Any, Any]]:
        """Feed `data` and return the answers it completed, (token, payload bytes or error),
        with their tokens left unresolved (for tests and tooling; the adapter reads into
        `get_buffer()` instead)."""
        deferring, self.deferring = self.deferring, True
        on_answers, self.on_answers = self.on_answers, None
        try:
            self.data_received(data)
        finally:
            self.deferring = deferring
            self.on_answers = on_answers
        answers = self.answers.copy()  # (the same list stays: the adapter shares it)
        self.answers.clear()
        return answers

    def frame_received(self, envelope: memoryview) -> None:
        # Its first lines are PluginSession's too, on purpose: a shared method would be a frame
        # more per call on each side (docs/hot-path.md, "Strategies").
        decode = self._decode
        if decode is None:
            self.on_handshake(envelope)
            return
        try:
            message = decode(envelope)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # (nested too deep)
            self._bad_envelope(envelope)
            return
        sent = self.pending.pop(message.id, None)
        if sent is None:
            self._stray(message)
            return
        token = sent[0]
        if type(message) is ResultMsg:
            if self.deferring:
                self.answers.append((token, bytes(message.payload)))  # copied out of the reused buffer
            elif not token.done():
                token.set_result(bytes(message.payload))
            return
        if token.done():
            return
        error = error_from_code(
            message.code,
            message.message,
            retryable=message.retryable,
            plugin=self.name,
            request_sent=_answered(message.code),
        )
        if self.deferring:
            self.answers.append((token, error))
        else:
            token.set_exception(error)

    def frame_error(self, error: ProtocolError) -> None:
        error.plugin = self.name
        self.on_error(error)

    def _bad_envelope(self, envelope: memoryview) -> None:
        assert self.envelopes is not None
        try:  # decoded again, rarely, for the error the envelope codec words
            self.envelopes.decode(envelope)
        except ProtocolError as exc:
            exc.plugin = self.name
            self.on_error(exc)
            return
        # It decoded this time: only nesting refused by the recursion limit depends on where
        # the decoder ran (say, in a caller's task, reading ahead). Still one refused frame.
        error = _too_deep(f"{self.envelopes.codec} envelope", envelope)
        error.plugin = self.name
        self.on_error(error)

    def _stray(self, message: ResultMsg | ErrorMsg) -> None:
        if type(message) is ErrorMsg and message.id == 0:
            _log.error("plugin %r reported a connection error: [%d] %s", self.name, message.code, message.message)
            return
        if message.id in self.cancelled:
            del self.cancelled[message.id]  # the late answer to a call given up: expected, dropped
            self.late_answers += 1  # (slow, but alive)
            return
        self.stray_replies += 1
        kind = "unknown" if message.id >= self.next_id or message.id <= 0 else "duplicate"
        _log.warning("plugin %r answered %s id %d; the reply was dropped", self.name, kind, message.id)


class _Recorded:
    """The token of a session used without a loop: records how it was resolved."""

    __slots__ = ("exception", "resolved", "result")

    def __init__(self) -> None:
        self.resolved = False
        self.result: Any = None
        self.exception: BaseException | None = None

    def done(self) -> bool:
        return self.resolved

    def set_result(self, result: Any, /) -> None:
        self.resolved, self.result = True, result

    def set_exception(self, exception: BaseException, /) -> None:
        self.resolved, self.exception = True, exception


def _default_token() -> Token:
    return _Recorded()


def _discard(frame: bytearray | bytes) -> None:
    pass


def _ignore_frame(envelope: memoryview) -> None:
    pass


def _ignore_error(error: ProtocolError) -> None:
    raise error


def _nothing() -> None:
    pass
