"""The host end of one plugin connection: handshake, multiplexed calls, cancel, health.

Calls are futures in a dict keyed by id, resolved by the reader as frames arrive: no task
per call. Attempt timeouts are enforced here too, by one timer per connection over a heap of
deadlines instead of a timer per call. A timed-out or cancelled call sends `cancel {id}` and
frees its slot at once; a reply that arrives later is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import msgspec

from .._codec import CodecName
from .._errors import (
    ErrorCode,
    PluginError,
    PluginTimeoutError,
    ProtocolError,
    RequestSent,
    TransportError,
    answered,
    error_from_code,
)
from .._models import HealthStatus
from .._protocol import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    SUPPORTED_VERSIONS,
    CallContext,
    CallMsg,
    CancelMsg,
    EnvelopeCodec,
    ErrorMsg,
    FrameReader,
    HealthMsg,
    HostHello,
    PluginHello,
    PluginMessage,
    ResultMsg,
    ShutdownMsg,
    handshake_frame,
    too_deep,
)
from .._seam import cheap_clock, cheap_future_factory
from ._deadlines import Deadlines, Sent
from ._hello import check_reply
from ._lost import closed_error, junk_error, lost_call_error, not_sent
from ._outbox import new_outbox
from ._readahead import ReadAhead, read_ahead_for
from ._stalls import HalfFrameWatch, StallWatch
from ._wakeups import Wakeups
from .base import Call, attempt_timed_out

__all__ = ["HostConnection"]

_Raw = msgspec.Raw

_log = logging.getLogger("plugwire.transport.subprocess")
_REMEMBERED_CANCELS: Final = 1024


class HostConnection(FrameReader):
    """The host's protocol on the socket shared with one plugin process.

    Args:
        name: The plugin's name (for errors and logs).
        max_frame: The largest frame accepted from the plugin.
        write_timeout: Seconds the plugin may leave our writes unread before the
            connection is declared stuck.
        stall_timeout: Seconds the plugin may answer nothing while calls time out (at least
            `STALL_TIMEOUTS` of them) before the connection is declared stuck (1311); 0: never.
    """

    def __init__(
        self,
        name: str,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        write_timeout: float = 10.0,
        stall_timeout: float = 10.0,
    ) -> None:
        super().__init__(max_frame)
        loop = asyncio.get_running_loop()
        self._loop = loop
        #: The event loop's clock, which call deadlines are measured on (its bound `time`).
        self.loop_time: Callable[[], float] = cheap_clock(loop)
        self._new_future = cheap_future_factory(loop)
        self.name = name
        self.write_timeout = write_timeout
        # Stall detection, looked at only when a call times out (nothing per call).
        self._stalls = StallWatch(loop, self._settled, self._break, name, stall_timeout)
        self.handshake: asyncio.Future[PluginHello] = loop.create_future()
        self.lost: asyncio.Future[PluginError] = loop.create_future()
        #: False once the connection broke (`lost` holds why); a plain attribute, read on every call.
        self.alive = True
        self.transport: asyncio.Transport | None = None
        self.codec: CodecName = "msgpack"
        self._envelopes: EnvelopeCodec | None = None
        # Its bare msgspec decoder, once the handshake chose a codec: a call's answer is
        # decoded without a wrapper; what it refuses goes through `_bad_envelope`.
        self._decode_envelope: Callable[[memoryview], Any] | None = None
        self._peer_max_frame = DEFAULT_MAX_FRAME
        # Every call sent and not answered, in the order sent: its answer's future, where its
        # frame ends in what was written, its deadline and its `Call` (`Sent`).
        self._pending: dict[int, Sent] = {}
        self._cancelled: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._next_id = 1
        self._control_calls = 0  # health checks sent, and those still waiting for their answer
        self._controls_pending = 0
        self._writable: asyncio.Future[None] | None = None
        #: Whether `send_call` must wait: the plugin has not read our earlier writes yet
        #: (await `wait_writable` first). A plain attribute: it is read on every call.
        self.must_wait = False
        self._stall_timer: asyncio.TimerHandle | None = None
        self._half_frame = HalfFrameWatch(loop, write_timeout, self, self._break, name)
        self._deadlines = Deadlines(loop, self._pending, self._expire)
        self.stray_replies = 0
        #: Reads a call's answer right after its request went out (`attach_socket`).
        self.read_ahead: ReadAhead | None = None
        # Answers read outside any task wake their callers at the end of the read (`_wakeups.py`):
        # every read but the one `send_call` makes inside its caller's task sets them aside.
        self._wakeups = Wakeups(loop)
        self._deferring = self._wakeups.enabled
        # Frames to the plugin: coalesced per loop turn (`_outbox.py`), or each at once (plain).
        self._out = new_outbox(loop, self._wakeups)
        self._write = self._out.write

    # ------------------------------------------------------------- inspection
    @property
    def inflight(self) -> int:
        """Calls sent and not yet answered (health checks not counted)."""
        # (A broken connection empties `_pending` before its health checks count themselves out.)
        return max(len(self._pending) - self._controls_pending, 0)

    @property
    def calls_started(self) -> int:
        """Calls sent on this connection so far (health checks not counted)."""
        return self._next_id - 1 - self._control_calls

    def _settled(self) -> int:
        """Calls sent so far minus those still pending (for the stall watch)."""
        return self._next_id - 1 - len(self._pending)

    # -------------------------------------------------------------- handshake
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports have the methods but do not
        # subclass asyncio's ABCs, and a host may run on uvloop.
        self.transport = self._out.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=1024 * 1024)

    def attach_socket(self, sock: socket.socket) -> None:
        """The socket the transport reads: answers already there when a request goes out are
        read at once (`_readahead.py`; on the standard library's selector loops)."""
        self.read_ahead = self._out.read_ahead = read_ahead_for(sock, self)

    def send_hello(self, codecs: list[str], auth: Mapping[str, str]) -> None:
        """Send the host's `hello` (the first frame of the connection)."""
        hello = HostHello(versions=list(SUPPORTED_VERSIONS), codecs=codecs, max_frame=self.max_frame, auth=dict(auth))
        self._offered_codecs = codecs
        self._write(handshake_frame(hello))

    def _on_handshake(self, envelope: memoryview) -> None:
        reply = check_reply(envelope, self._offered_codecs, self.name, self._junk_error)
        if isinstance(reply, PluginError):
            self._break(reply)
            return
        self.codec = cast(CodecName, reply.codec)  # one of the codecs offered: checked
        self._peer_max_frame = reply.max_frame
        self._envelopes = EnvelopeCodec(self.codec, PluginMessage)
        self._decode_envelope = self._envelopes.raw_decoder
        self.handshake.set_result(reply)

    def _junk_error(self) -> ProtocolError:
        return junk_error(self.peek(64), self.name)

    # ------------------------------------------------------------------ frames
    def frame_received(self, envelope: memoryview) -> None:
        decode = self._decode_envelope
        if decode is None:
            self._on_handshake(envelope)
            return
        try:
            message = decode(envelope)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # (nested too deep)
            self._bad_envelope(envelope)
            return
        sent = self._pending.pop(message.id, None)
        if sent is None:
            self._stray(message)
            return
        future = sent[0]
        # Outside a task the caller is woken when the read is parsed (`_wakeups.py`, which
        # also leaves alone a future cancelled meanwhile).
        if type(message) is ResultMsg:
            if self._deferring:
                self._wakeups.answers.append((future, bytes(message.payload)))  # copied out of the reused buffer
            elif not future.done():
                future.set_result(bytes(message.payload))
            return
        if future.done():
            return
        error = error_from_code(
            message.code,
            message.message,
            retryable=message.retryable,
            plugin=self.name,
            request_sent=answered(message.code),
        )
        if self._deferring:
            self._wakeups.answers.append((future, error))
        else:
            future.set_exception(error)

    def _bad_envelope(self, envelope: memoryview) -> None:
        assert self._envelopes is not None
        try:  # decoded again, rarely, for the error the envelope codec words
            self._envelopes.decode(envelope)
        except ProtocolError as exc:
            exc.plugin = self.name
            self._break(exc)
            return
        # It decoded this time: only nesting refused by the recursion limit depends on where
        # the decoder ran (say, in a caller's task, reading ahead). Still one refused frame.
        error = too_deep(f"{self.codec} envelope", envelope)
        error.plugin = self.name
        self._break(error)

    def _stray(self, message: ResultMsg | ErrorMsg) -> None:
        if type(message) is ErrorMsg and message.id == 0:
            _log.error("plugin %r reported a connection error: [%d] %s", self.name, message.code, message.message)
            return
        if message.id in self._cancelled:
            del self._cancelled[message.id]  # the late answer to a cancelled call: expected, dropped
            self._stalls.late_answers += 1  # (slow, but alive)
            return
        self.stray_replies += 1
        kind = "unknown" if message.id >= self._next_id or message.id <= 0 else "duplicate"
        _log.warning("plugin %r answered %s id %d; the reply was dropped", self.name, kind, message.id)

    def buffer_updated(self, nbytes: int) -> None:
        self._out.sent_since_read = False
        try:
            # `FrameReader.buffer_updated` inlined: a frame fewer per read, ~455 instructions, about
            # 0.7% of a sequential call (docs/hot-path.md, "Strategies").
            self._end += nbytes
            if not self._broken:
                self._parse()
        finally:
            # Answers read before anything went wrong are delivered whatever happened after
            # them: they already left `_pending`, so no deadline would ever fail them.
            if self._wakeups.answers:
                self._wakeups.wake()
        if self._end != self._start:  # rare: a frame split across reads; watch that the rest comes
            self._half_frame.partial()

    def frame_error(self, error: ProtocolError) -> None:
        error.plugin = self.name
        self._break(self._junk_error() if self._envelopes is None else error)

    def eof_received(self) -> bool:
        self._break(self._eof_error())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._break(self._eof_error(exc))

    def _eof_error(self, exc: Exception | None = None) -> PluginError:
        if self._envelopes is None and 0 < self.buffered < HEADER_SIZE:
            return self._junk_error()
        truncated = self.truncation_error()
        if truncated is not None:
            truncated.plugin = self.name
            return truncated
        return closed_error(exc, self.name)

    # ------------------------------------------------------------------- calls
    async def call(
        self, payload: bytes, ctx: CallContext, deadline: float | None = None, call: Call | None = None
    ) -> bytes:
        """Send one call and wait for its answer (bytes in the negotiated codec).

        Args:
            payload: The encoded request.
            ctx: The call's wire context.
            deadline: When to give up, on the event loop's clock (None: never); the call then
                fails with `attempt_timed_out(call)` and the plugin gets `cancel`.
            call: The attempt this is (for the timeout error); required with `deadline`.

        Raises:
            PluginError: The plugin's coded error; `PluginTimeoutError` (1204) past the
                deadline; `OutcomeUnknownError` (1207) when the connection broke after the
                request was sent; `TransportError` when it broke before (1302), or the plugin
                left our writes unread (1303); `ProtocolError` (2001) for a request above the
                plugin's frame limit.
        """
        if self._writable is not None:
            await self.wait_writable(deadline, call)
        call_id, future = self.send_call(payload, ctx, deadline, call)
        try:
            return await future
        except asyncio.CancelledError:
            self.abandon(call_id)
            raise

    def send_call(
        self, payload: bytes, ctx: CallContext, deadline: float | None = None, call: Call | None = None
    ) -> tuple[int, asyncio.Future[bytes]]:
        """Send one call; its answer resolves the returned future. `call()` in two steps,
        so a caller that awaits the future itself adds no coroutine frame of ours per call.

        The caller must `abandon(call_id)` if it stops waiting (cancellation), and should
        `await wait_writable()` first while `must_wait`. Raises what `call()` raises
        before the request is sent.
        """
        if not self.alive:
            raise self._not_sent(self.lost.result())
        codec = self._envelopes
        assert codec is not None, "call before the handshake"
        call_id = self._next_id
        message = CallMsg(call_id, _Raw(payload), "execute", ctx)
        out = self._out
        corked = out.corked
        if corked is not None:  # (written at the end of the turn, unless the transport is closing by then)
            # Joins the frames gathered for this turn's write: encoded in place, no copy.
            before = len(corked)
            codec.append_frame(message, corked, self._peer_max_frame)
            out.written += len(corked) - before
            sent_now = False
        else:
            sent_now = self._write(codec.frame(message, self._peer_max_frame))
        self._next_id = call_id + 1
        future: asyncio.Future[bytes] = self._new_future()
        self._pending[call_id] = (future, out.written, deadline, call)  # its deadline is watched from here
        if deadline is not None and deadline < self._deadlines.armed_at:
            self._deadlines.arm(deadline)  # (in steady traffic the timer is set for an earlier call)
        if sent_now and self.read_ahead is not None:
            # May answer this call (or fail it) right here, inside the caller's task: answers
            # read now are not set aside for `_wakeups`, whose waiters need no task running.
            deferring, self._deferring = self._deferring, False
            try:
                self.read_ahead.after_write()
            finally:
                self._deferring = deferring
        return call_id, future

    def abandon(self, call_id: int) -> None:
        """The caller of call `call_id` stopped waiting: tell the plugin to stop (`cancel`)."""
        if self._pending.pop(call_id, None) is not None:
            self._remember_cancel(call_id)
            if self.alive and self._envelopes is not None:
                self._write(self._envelopes.frame(CancelMsg(id=call_id)))

    async def health(self) -> HealthStatus:
        """Ask the plugin for its health."""
        raw = await self.call_control(HealthMsg)
        try:
            return msgspec.convert(
                msgspec.json.decode(raw) if self.codec == "json" else msgspec.msgpack.decode(raw), HealthStatus
            )
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProtocolError(
                f"invalid health answer: {exc}", code=ErrorCode.ENVELOPE_INVALID, plugin=self.name
            ) from None

    async def call_control(self, kind: type[HealthMsg]) -> bytes:
        if self.lost.done():
            raise self._not_sent(self.lost.result())
        assert self._envelopes is not None
        call_id = self._next_id
        self._next_id = call_id + 1
        self._control_calls += 1
        self._controls_pending += 1
        future: asyncio.Future[bytes] = self._new_future()
        try:
            self._write(self._envelopes.frame(kind(id=call_id)))
            self._pending[call_id] = (future, self._out.written, None, None)
            return await future
        finally:
            self._controls_pending -= 1
            if self._pending.pop(call_id, None) is not None:
                self._remember_cancel(call_id)

    def send_shutdown(self, grace: float) -> None:
        """Ask the plugin to stop within `grace` seconds."""
        if self.alive and self._envelopes is not None:
            self._write(self._envelopes.frame(ShutdownMsg(grace=grace)))

    def _expire(self, call_id: int, call: Call | None) -> None:
        """Its deadline passed: fail the call with 1204 and tell the plugin to stop."""
        future = self._pending.pop(call_id)[0]
        self._remember_cancel(call_id)
        if self.alive and self._envelopes is not None:
            self._write(self._envelopes.frame(CancelMsg(id=call_id)))
        if not future.done():
            error = (
                attempt_timed_out(call)
                if call is not None
                else PluginTimeoutError("no answer by the call's deadline", plugin=self.name)
            )
            future.set_exception(error)

    def _remember_cancel(self, call_id: int) -> None:
        """Call `call_id` left `_pending` unanswered (timed out, or its caller gave up)."""
        self._cancelled[call_id] = None
        if len(self._cancelled) > _REMEMBERED_CANCELS:
            self._cancelled.popitem(last=False)
        self._stalls.gave_up()

    # ---------------------------------------------------------- flow control
    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()
        self.must_wait = True
        self._stall_timer = self._loop.call_later(self.write_timeout, self._write_stalled)

    def resume_writing(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        waiter, self._writable = self._writable, None
        self.must_wait = False
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_writable(self, deadline: float | None = None, call: Call | None = None) -> None:
        """Wait until the plugin read enough of our writes (see `must_wait`), within `deadline`."""
        waiter = self._writable
        if waiter is None:
            return
        if deadline is None:
            await asyncio.shield(waiter)
            return
        assert call is not None
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                await asyncio.shield(waiter)
        except TimeoutError:
            if scope.expired():  # still waiting to write it: the plugin never saw the request
                raise attempt_timed_out(call, RequestSent.NO) from None
            raise

    def _write_stalled(self) -> None:
        self._stall_timer = None
        self._break(
            TransportError(
                f"the plugin left {self.transport.get_write_buffer_size() if self.transport else 0} bytes unread "
                f"for {self.write_timeout:g}s (is it reading its stdin?)",
                code=ErrorCode.WRITE_TIMEOUT,
                plugin=self.name,
            )
        )

    # ------------------------------------------------------------------ break
    def _not_sent(self, reason: PluginError) -> TransportError:
        return not_sent(reason, self.name)

    def _break(self, reason: PluginError) -> None:
        """Fail every pending call at once and close: sent calls are outcome-unknown."""
        if self.lost.done():
            return
        self.alive = False
        self.lost.set_result(reason)
        self.stop_reading_frames()
        if not self.handshake.done():
            self.handshake.set_exception(reason)
            self.handshake.exception()  # retrieved here; the starter reads `lost`
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._stalls.stop()
        self._half_frame.stop()
        self._deadlines.clear()
        transport = self.transport
        flushed = self._out.written - self._out.unflushed()
        pending = dict(self._pending)
        self._pending.clear()
        for future, frame_end, _, _ in pending.values():
            if not future.done():
                future.set_exception(lost_call_error(reason, self.name, sent=frame_end <= flushed))
        waiter, self._writable = self._writable, None
        self.must_wait = False
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if transport is not None:
            transport.abort()

    def close(self, reason: PluginError) -> None:
        """Close the connection on purpose, failing what is still pending with `reason`."""
        self._break(reason)
