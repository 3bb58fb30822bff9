"""The plugin's end of protocol v1 as a state machine: calls in, answers out, no I/O.

`PluginSession` decodes what the host sends, keeps the table of running calls by id (a
token per call: the task that runs it, in the asyncio adapter), refuses what it will not run
(a call while stopping, an unknown method, an id already running) with an `error` for its id,
remembers which calls the host cancelled (their answers are not sent), and encodes answers
under the batching rule of `session.py`: the answers of the calls a read starts and finishes
at once leave together, in one write right after that read (`buffer_updated` returns it).

What runs a call is the adapter's (`_sdk/stdio.py`): the session asks it for the work of a
call (`run_call`) or a health check (`run_health`), has it started (`start`: a token, or None
when the work finished at once), and tells it of cancels and shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from .._errors import ErrorCode, ProtocolError
from .messages import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    CallMsg,
    CancelMsg,
    EnvelopeCodec,
    ErrorMsg,
    HealthMsg,
    ShutdownMsg,
    pack_length,
    too_deep,
)
from .refusals import call_refusal, readable_id
from .session import Session

__all__ = ["PluginSession"]

_log = logging.getLogger("plugwire.sdk")


def _unset(*args: Any) -> Any:
    raise RuntimeError("the plugin session's owner did not supply this")


class PluginSession(Session):
    """The plugin's protocol state for one connection.

    Args:
        max_frame: The largest frame accepted from the host.
        batching: The batching rule on (`Session.push`), else each answer goes out at once.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, batching: bool = True) -> None:
        super().__init__(max_frame, batching=batching)
        #: The calls and health checks running, by id: each one's token.
        self.running: dict[int, Any] = {}
        #: Ids of running calls the host cancelled: it ignores any answer, so none is sent.
        self.cancelled_by_host: set[int] = set()
        #: No new calls: each is refused (retryable) at once.
        self.stopping = False
        # What the owner supplies.
        #: The host's handshake frame (the owner answers it and calls `start`).
        self.on_handshake: Callable[[memoryview], None] = _unset
        #: The stream broke the framing rules.
        self.on_error: Callable[[ProtocolError], None] = _unset
        #: The work of one call: (call id, payload bytes, wire context).
        self.run_call: Callable[[int, bytes, Any], Any] = _unset
        #: The work of one health check: (call id).
        self.run_health: Callable[[int], Any] = _unset
        #: Starts work: its token, or None when it finished already (it is not tracked).
        self.start_work: Callable[[Any], Any] = _unset
        #: The host cancelled a running call: (call id, token).
        self.cancel: Callable[[int, Any], None] = _unset
        #: The table of running calls grew (the owner may stop reading at its limit).
        self.running_changed: Callable[[], None] = _nothing
        #: The host asked to stop within the grace given.
        self.on_shutdown: Callable[[float], None] = _unset
        #: Writes frames that go out now.
        self.write: Callable[[bytearray | bytes], None] = _unset
        self._decode: Callable[[memoryview], Any] | None = None

    def start(self, envelopes: EnvelopeCodec, peer_max_frame: int) -> None:
        """The handshake is done: `envelopes` encodes and decodes (`HostMessage` in), and the
        host accepts frames up to `peer_max_frame` bytes."""
        self.envelopes = envelopes
        self.peer_max_frame = peer_max_frame
        self._decode = envelopes.raw_decoder

    # ------------------------------------------------------------------ reading
    def buffer_updated(self, nbytes: int) -> bytearray | None:
        """`nbytes` more bytes were read into `get_buffer()`'s buffer. Returns the frames to
        write now (the answers of the calls this read started and finished at once), if any."""
        self.sent_since_read = False
        # Answers of the calls this read starts and finishes at once leave together, in one
        # write right after it: a read of many calls must not send the first answer alone
        # (on one CPU that wakes the host for a single answer).
        self.in_read = self.batching
        try:
            # `FrameReader.buffer_updated` inlined: a frame fewer per read (docs/hot-path.md).
            self._end += nbytes
            if not self.broken:
                self._parse()
        finally:
            self.in_read = False
        corked = self.corked
        if corked is None:
            return None
        self.corked = None
        self.sent_since_read = True
        return corked or None

    def receive_data(self, data: bytes) -> bytes:
        """Feed `data` (bytes read elsewhere: a pipe's `data_received`, tests); returns the
        frames to write now."""
        return bytes(self.feed(data))

    def frame_received(self, envelope: memoryview) -> None:
        # Its first lines are HostSession's too, on purpose: a shared method would be a frame
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
        if type(message) is CallMsg:
            call_id = message.id
            running = self.running
            if self.stopping or message.method != "execute" or call_id in running:
                self.send(call_refusal(message, stopping=self.stopping))
                return
            # Copy the payload out of the reused receive buffer before the next read.
            token = self.start_work(self.run_call(call_id, bytes(message.payload), message.ctx))
            if token is not None:  # None: answered already, before it could be tracked
                running[call_id] = token
                self.running_changed()
        elif type(message) is CancelMsg:
            token = self.running.get(message.id)
            if token is not None:
                self.cancelled_by_host.add(message.id)
                self.cancel(message.id, token)
        elif type(message) is HealthMsg:
            call_id = message.id
            if call_id in self.running:
                self.send(
                    ErrorMsg(id=call_id, code=ErrorCode.ENVELOPE_INVALID, message=f"id {call_id} is already in use")
                )
                return
            token = self.start_work(self.run_health(call_id))
            if token is not None:
                self.running[call_id] = token
                self.running_changed()
        elif type(message) is ShutdownMsg:
            self.on_shutdown(message.grace)

    def frame_error(self, error: ProtocolError) -> None:
        self.on_error(error)

    def _bad_envelope(self, envelope: memoryview) -> None:
        assert self.envelopes is not None
        try:  # decoded again, rarely, for the error the envelope codec words
            self.envelopes.decode(envelope)
        except ProtocolError as exc:
            error = exc
        else:  # (only nesting refused by the recursion limit depends on where the decoder ran)
            error = too_deep(f"{self.envelopes.codec} envelope", envelope)
        _log.error("ignoring a frame from the host: %s", error.message)
        # Answered for its id when that much can be read (a call with a bad field fails
        # at once instead of waiting for its timeout), else for id 0.
        self.send(ErrorMsg(id=readable_id(envelope, self.envelopes.codec), code=error.code, message=error.message))

    # ------------------------------------------------------------------ calls
    def finish(self, call_id: int) -> bool:
        """Call `call_id` is over: out of the table. Returns whether it was in it."""
        if self.running.pop(call_id, None) is None:
            return False
        self.cancelled_by_host.discard(call_id)
        return True

    # ---------------------------------------------------------------- writing
    def send(self, message: Any) -> None:
        """Send `message` (an answer), under the batching rule; one too large for the host
        is replaced by the error saying so."""
        envelopes = self.envelopes
        if envelopes is None:
            return
        try:
            frame = envelopes.frame(message, self.peer_max_frame)
        except ProtocolError as exc:  # an answer too large for the host: say so instead
            call_id = getattr(message, "id", 0)
            frame = envelopes.frame(ErrorMsg(id=call_id, code=exc.code, message=exc.message))
        now = self.push(frame)
        if now is not None:
            self.write(now)

    def send_result_frame(self, call_id: int, frame: bytearray) -> None:
        """Send a result frame encoded by the caller after a `HEADER_SIZE` gap (its length is
        packed here); one too large for the host is refused with the error saying so."""
        size = len(frame) - HEADER_SIZE
        if size > self.peer_max_frame:  # an answer too large for the host: say so instead
            max_frame = self.peer_max_frame
            message = f"a ResultMsg frame of {size} bytes exceeds the peer's limit of {max_frame} bytes"
            self.send(ErrorMsg(id=call_id, code=ErrorCode.FRAME_TOO_LARGE, message=message))
            return
        pack_length(frame, 0, size)
        now = self.push(frame)
        if now is not None:
            self.write(now)


def _nothing() -> None:
    pass
