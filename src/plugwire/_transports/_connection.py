"""The host end of one plugin connection: the asyncio adapter of the host's protocol session.

The protocol itself (framing, call ids, the table of pending calls, cancel memory, stray and
late answers, the batching rule) is `_protocol.HostSession`, with no I/O. This adapter moves
its bytes over the socket and supplies what needs the loop: a future per call (the token the
session resolves: no task per call), one timer per connection over a heap of deadlines
(`_deadlines.py`) instead of a timer per call, flow control, the early wake-ups of a read's
callers (`_wakeups.py`), reading ahead (`_readahead.py`), and stall watching (`_stalls.py`).
A timed-out or cancelled call sends `cancel {id}` and frees its slot at once; a reply that
arrives later is dropped (and counted as late).

The session's hot methods are this protocol's own (`get_buffer`, `buffer_updated`,
`send_call`: instance attributes bound to the session), so a read or a call costs no frame
of the adapter's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from typing import cast

import msgspec

from .._codec import CodecName
from .._errors import (
    ErrorCode,
    PluginError,
    PluginTimeoutError,
    ProtocolError,
    RequestSent,
    TransportError,
)
from .._models import HealthStatus
from .._protocol import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    SUPPORTED_VERSIONS,
    CallContext,
    EnvelopeCodec,
    HealthMsg,
    HostHello,
    HostSession,
    PluginHello,
    PluginMessage,
    handshake_frame,
)
from .._seam import cheap_clock, cheap_future_factory, fast_paths
from ._deadlines import Deadlines
from ._hello import check_reply
from ._lost import closed_error, junk_error, lost_call_error, not_sent
from ._readahead import ReadAhead, read_ahead_for
from ._stalls import HalfFrameWatch, StallWatch
from ._wakeups import Wakeups
from .base import Call, attempt_timed_out

__all__ = ["HostConnection"]

_log = logging.getLogger("plugwire.transport.subprocess")


class HostConnection(asyncio.BufferedProtocol):
    """The host's protocol on the socket shared with one plugin process.

    Args:
        name: The plugin's name (for errors and logs).
        max_frame: The largest frame accepted from the plugin.
        write_timeout: Seconds the plugin may leave our writes unread before the
            connection is declared stuck.
        stall_timeout: Seconds the plugin may answer nothing while calls time out (at least
            `STALL_TIMEOUTS` of them) before the connection is declared stuck (1311); 0: never.
    """

    # The session's own methods, bound per connection (see the module's docstring).
    get_buffer: Callable[[int], memoryview]  # type: ignore[assignment]
    buffer_updated: Callable[[int], None]  # type: ignore[assignment]
    data_received: Callable[[bytes], None]
    send_call: Callable[..., tuple[int, asyncio.Future[bytes]]]

    def __init__(
        self,
        name: str,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        write_timeout: float = 10.0,
        stall_timeout: float = 10.0,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        #: The protocol's state (`_protocol/host_session.py`).
        self.session = session = HostSession(name, max_frame=max_frame, batching=fast_paths("batching"))
        self.max_frame = max_frame
        #: The event loop's clock, which call deadlines are measured on (its bound `time`).
        self.loop_time: Callable[[], float] = cheap_clock(loop)
        self.name = name
        self.write_timeout = write_timeout
        self.handshake: asyncio.Future[PluginHello] = loop.create_future()
        self.lost: asyncio.Future[PluginError] = loop.create_future()
        #: False once the connection broke (`lost` holds why); a plain attribute, read on every call.
        self.alive = True
        self.transport: asyncio.Transport | None = None
        self.codec: CodecName = "msgpack"
        self._offered_codecs: list[str] = []
        self._writable: asyncio.Future[None] | None = None
        #: Whether `send_call` must wait: the plugin has not read our earlier writes yet
        #: (await `wait_writable` first). A plain attribute: it is read on every call.
        self.must_wait = False
        self._stall_timer: asyncio.TimerHandle | None = None
        self._unwritten = 0  # bytes of frames the transport, closing, did not take
        #: Reads a call's answer right after its request went out (`attach_socket`).
        self.read_ahead: ReadAhead | None = None
        # Stall detection, looked at only when a call times out (nothing per call).
        #: Watches for a stuck plugin; `stalls.silent_since`/`suspect()` tell the pool's dispatch.
        self.stalls = StallWatch(loop, lambda: session.settled, self._break, name, stall_timeout)
        self._half_frame = HalfFrameWatch(loop, write_timeout, session, self._break, name)
        self._deadlines = Deadlines(loop, session.pending, self._expire)
        # Answers read outside any task wake their callers at the end of the read (`_wakeups.py`):
        # every read but the one `send_call` makes inside its caller's task sets them aside.
        self._wakeups = wakeups = Wakeups(loop)
        session.answers = wakeups.answers
        session.deferring = wakeups.enabled
        session.on_answers = wakeups.wake
        session.waking = wakeups
        session.new_token = cheap_future_factory(loop)
        session.write_now = self._write_now
        session.write = self._write
        session.on_hold = self._hold
        session.refuse = self._refusal
        session.deadlines = self._deadlines
        session.on_handshake = self._on_handshake
        session.on_error = self._frame_error
        session.on_partial = self._half_frame.partial
        session.on_gave_up = self.stalls.gave_up
        self.get_buffer = session.get_buffer
        self.buffer_updated = session.buffer_updated
        self.data_received = session.data_received
        self.send_call = session.send_call

    # ------------------------------------------------------------- inspection
    @property
    def inflight(self) -> int:
        """Calls sent and not yet answered (health checks not counted)."""
        return self.session.inflight

    @property
    def calls_started(self) -> int:
        """Calls sent on this connection so far (health checks not counted)."""
        return self.session.calls_started

    @property
    def stray_replies(self) -> int:
        """Answers for ids never sent, or answered already."""
        return self.session.stray_replies

    @property
    def buffered(self) -> int:
        """Bytes received but not yet delivered as a frame (a partial frame)."""
        return self.session.buffered

    @property
    def capacity(self) -> int:
        """The current size of the receive buffer."""
        return self.session.capacity

    def peek(self, limit: int = 64) -> bytes:
        """The first `limit` bytes received and not delivered, for error messages."""
        return self.session.peek(limit)

    # -------------------------------------------------------------- handshake
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports have the methods but do not
        # subclass asyncio's ABCs, and a host may run on uvloop.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=1024 * 1024)

    def attach_socket(self, sock: socket.socket) -> None:
        """The socket the transport reads: answers already there when a request goes out are
        read at once (`_readahead.py`; on the standard library's selector loops)."""
        self.read_ahead = read_ahead_for(sock, self)
        if self.read_ahead is not None:
            self.session.due = self.read_ahead.due

    def send_hello(self, codecs: list[str], auth: Mapping[str, str]) -> None:
        """Send the host's `hello` (the first frame of the connection)."""
        hello = HostHello(versions=list(SUPPORTED_VERSIONS), codecs=codecs, max_frame=self.max_frame, auth=dict(auth))
        self._offered_codecs = codecs
        self._send(handshake_frame(hello))

    def _on_handshake(self, envelope: memoryview) -> None:
        reply = check_reply(envelope, self._offered_codecs, self.name, self._junk_error)
        if isinstance(reply, PluginError):
            self._break(reply)
            return
        self.codec = cast(CodecName, reply.codec)  # one of the codecs offered: checked
        self.session.start(EnvelopeCodec(self.codec, PluginMessage), reply.max_frame)
        self.handshake.set_result(reply)

    def _junk_error(self) -> ProtocolError:
        return junk_error(self.session.peek(64), self.name)

    # ------------------------------------------------------------------ frames
    def _frame_error(self, error: ProtocolError) -> None:
        self._break(self._junk_error() if self.session.envelopes is None else error)

    def eof_received(self) -> bool:
        self._break(self._eof_error())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._break(self._eof_error(exc))

    def _eof_error(self, exc: Exception | None = None) -> PluginError:
        session = self.session
        if session.envelopes is None and 0 < session.buffered < HEADER_SIZE:
            return self._junk_error()
        truncated = session.truncation_error()
        if truncated is not None:
            truncated.plugin = self.name
            return truncated
        return closed_error(exc, self.name)

    # ------------------------------------------------------------------ writes
    def _write(self, frame: bytearray | bytes) -> bool:
        """A frame the session sends at once. Returns whether it went out."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self._unwritten += len(frame)
            return False
        transport.write(frame)
        return True

    def _write_now(self, frame: bytearray | bytes) -> None:
        """Calls the session sends at once: their answers may be read right after."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self._unwritten += len(frame)
            return
        transport.write(frame)
        read_ahead = self.read_ahead
        if read_ahead is not None:
            # May answer a call (or fail it) right here, inside the caller's task: answers
            # read now are not set aside for `_wakeups`, whose waiters need no task running.
            session = self.session
            deferring, session.deferring = session.deferring, False
            try:
                read_ahead.after_write()
            finally:
                session.deferring = deferring

    def _send(self, frame: bytearray | bytes) -> None:
        now = self.session.push(frame)
        if now is not None:
            self._write(now)

    def _hold(self) -> None:
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """The end of the loop turn: the frames held back leave together."""
        data = self.session.take_held()
        if data is not None and self._write(data) and self.read_ahead is not None:
            self.read_ahead.after_write()  # outside any task: answers read now are set aside

    def _refusal(self) -> BaseException:
        return self._not_sent(self.lost.result())

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

    # `send_call(payload, ctx, deadline=None, call=None) -> (call_id, future)` is the
    # session's (`HostSession.send_call`): `call()` in two steps, so a caller that awaits the
    # future itself adds no coroutine frame of ours per call. The caller must
    # `abandon(call_id)` if it stops waiting (cancellation), and should `await
    # wait_writable()` first while `must_wait`. It raises what `call()` raises before the
    # request is sent.

    def abandon(self, call_id: int) -> None:
        """The caller of call `call_id` stopped waiting: tell the plugin to stop (`cancel`)."""
        self.session.abandon(call_id)

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
        call_id, future = self.session.send_control(kind)
        try:
            return cast(bytes, await future)
        finally:
            self.session.finish_control(call_id)

    def send_shutdown(self, grace: float) -> None:
        """Ask the plugin to stop within `grace` seconds."""
        self.session.send_shutdown(grace)

    def _expire(self, call_id: int, call: Call | None) -> None:
        """Its deadline passed: fail the call with 1204 and tell the plugin to stop."""
        pending = self.session.abandon(call_id)
        assert pending is not None
        future = pending[0]
        if not future.done():
            error = (
                attempt_timed_out(call)
                if call is not None
                else PluginTimeoutError("no answer by the call's deadline", plugin=self.name)
            )
            future.set_exception(error)

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
        session = self.session
        if not self.handshake.done():
            self.handshake.set_exception(reason)
            self.handshake.exception()  # retrieved here; the starter reads `lost`
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self.stalls.stop()
        self._half_frame.stop()
        self._deadlines.clear()
        transport = self.transport
        # What reached the plugin: all that was written but the frames still held back and
        # what the transport still buffers (or never took).
        unflushed = len(session.take_held() or b"") + self._unwritten
        if transport is not None and not transport.is_closing():
            unflushed += transport.get_write_buffer_size()
        flushed = session.written - unflushed
        for future, frame_end, _, _ in session.close():
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
