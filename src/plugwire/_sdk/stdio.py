"""The plugin side of the stdio transport: protocol v1 over the plugin's stdin and stdout.

`StdioServer` performs the handshake, runs calls concurrently (bounded: reading pauses at
the limit, which pushes back on the host), honours `cancel` and deadlines, answers
`health`, and stops on `shutdown`, end of input or SIGTERM: no new calls, in-flight calls
finish or are cancelled within the grace period, then `close()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final, cast

import msgspec

from .._codec import CODECS, CodecName, _enc_hook, encode
from .._errors import ErrorCode, ExecutionError, PluginError, ProtocolError
from .._models import ExecutionContext
from .._protocol import (
    DEFAULT_MAX_FRAME,
    CallMsg,
    CancelMsg,
    EnvelopeCodec,
    ErrorMsg,
    FrameReader,
    HealthMsg,
    HostMessage,
    InlineResultMsg,
    ResultMsg,
    ShutdownMsg,
    handshake_frame,
    pack_length,
    too_deep,
)
from .._seam import fast_paths
from ._eager import new_starter
from ._hello import AuthVerifier, answer_hello
from ._idle import IdleWait
from ._refusals import call_refusal, readable_id
from .adapter import PluginAdapter

__all__ = ["AuthVerifier", "StdioServer"]

_log = logging.getLogger("plugwire.sdk")
EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
_HEADER: Final = 4  # a frame's length prefix


def _before_handshake(payload: Any) -> Any:
    raise RuntimeError("no call is decoded before the handshake")  # calls are refused until then


class StdioServer(FrameReader):
    """Serves one plugin on one connection; `done` resolves to the process exit status.

    Args:
        adapter: The plugin, wrapped.
        max_concurrency: Calls run at once; the connection stops reading at the limit.
        grace: Seconds in-flight calls get to finish when stopping.
        auth: Verifies the host's credentials during the handshake.
        max_frame: The largest frame accepted from the host.
        codecs: Codecs this plugin accepts, in no particular order (the host chooses).
    """

    def __init__(
        self,
        adapter: PluginAdapter,
        *,
        max_concurrency: int = 64,
        grace: float = 10.0,
        auth: AuthVerifier | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        codecs: tuple[CodecName, ...] = CODECS,
    ) -> None:
        super().__init__(max_frame)
        self.adapter = adapter
        self.max_concurrency = max_concurrency
        self.grace = grace
        self.auth = auth
        self.codecs = codecs
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._idle: IdleWait | None = None  # set for a socket on asyncio's epoll loop
        self.done: asyncio.Future[int] = loop.create_future()
        # A call runs up to its first suspension in the read that delivered it (in its own
        # task): one that answers at once costs no extra loop turn.
        self._starter = new_starter(loop)
        self._reader: asyncio.BaseTransport | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._envelopes: EnvelopeCodec | None = None
        # Set by the handshake: bare decoders and encoders (their errors are worded again by
        # the slow path), and an `async def execute` to await directly (None: the adapter's way).
        self._decode_envelope: Callable[[memoryview], Any] | None = None
        self._decode_request: Callable[[Any], Any] = _before_handshake
        self._execute: Callable[..., Any] | None = None
        self._encode_into: Callable[[Any, bytearray, int], None] = msgspec.msgpack.Encoder().encode_into
        self._codec: CodecName = "msgpack"
        self._peer_max_frame = DEFAULT_MAX_FRAME
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._cancelled_by_host: set[int] = set()
        self._stopping = False
        self._paused_for_calls = False
        self._paused_for_writes = False
        self._stopper: asyncio.Task[None] | None = None
        self._corked: bytearray | None = None  # answers held back until the end of this loop turn
        self._sent_since_read = False
        self._in_read = False  # inside `buffer_updated`: answers wait for the end of the read
        # Write coalescing (`_push_batched`: answers of one read leave together), or each
        # answer at once: the plain path (`_in_read` then stays False).
        self._batching = fast_paths("batching")
        self._push = self._push_batched if self._batching else self._push_now

    # --------------------------------------------------------------- wiring
    def attach_writer(self, writer: asyncio.WriteTransport) -> None:
        """Where frames go (the same transport as the reader for a socket)."""
        self._writer = writer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._reader = transport
        self._idle = IdleWait.attach(self._loop, transport)
        # Duck-typed: uvloop's transports have the methods but do not subclass asyncio's ABCs.
        if self._writer is None and hasattr(transport, "write"):
            self._writer = cast(asyncio.WriteTransport, transport)

    def _read_while_idle(self) -> None:
        # Between calls, wait for the host's next frames here rather than in a loop turn of
        # its own (`_idle.py`), while nothing of the server's could run meanwhile either.
        idle = self._idle
        assert idle is not None
        while (
            not self._tasks
            and not self._stopping
            and self._corked is None
            and not self._broken
            and not self._paused_for_calls
            and idle.readable()
        ):
            nbytes = idle.read_into(self.get_buffer(-1))
            if not nbytes:
                return
            self._take(nbytes)

    def eof_received(self) -> bool:
        self._input_ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._input_ended()

    def pause_writing(self) -> None:
        self._paused_for_writes = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused_for_writes = False
        self._update_reading()

    # --------------------------------------------------------------- frames
    def get_buffer(self, sizehint: int) -> memoryview:
        if self._end == 0 and not self._broken:  # the usual read: nothing pending, the whole buffer
            return self._view
        return super().get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._take(nbytes)
        if self._idle is not None:
            self._read_while_idle()

    def _take(self, nbytes: int) -> None:
        self._sent_since_read = False
        # Answers of the calls this read starts and finishes at once leave together, in one
        # write right after it: a read of many calls must not send the first answer alone
        # (on one CPU that wakes the host for a single answer).
        self._in_read = self._batching
        try:
            # `FrameReader.buffer_updated` inlined: ~1% of a sequential call (docs/hot-path.md).
            self._end += nbytes
            if not self._broken:
                self._parse()
        finally:
            self._in_read = False
        corked = self._corked
        if corked is not None:
            self._corked = None
            writer = self._writer
            if corked and writer is not None and not writer.is_closing():
                writer.write(corked)
            self._sent_since_read = True

    def frame_received(self, envelope: memoryview) -> None:
        decode = self._decode_envelope
        if decode is None:
            self._handshake(envelope)
            return
        try:
            message = decode(envelope)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # (nested too deep)
            self._bad_envelope(envelope)
            return
        if type(message) is CallMsg:  # `_start_call` inlined: a frame fewer on every call
            call_id = message.id
            tasks = self._tasks
            if self._stopping or message.method != "execute" or call_id in tasks:
                self._send(call_refusal(message, stopping=self._stopping))
                return
            # Copy the payload out of the reused receive buffer before the next read.
            task = self._starter.start(self._call(call_id, bytes(message.payload), message.ctx))
            if task is not None:  # None: answered already, its `finally` ran before it could be tracked
                tasks[call_id] = task
                self._update_reading()
        elif type(message) is CancelMsg:
            task = self._tasks.get(message.id)
            if task is not None:
                self._cancelled_by_host.add(message.id)
                task.cancel()
                task.add_done_callback(lambda _, i=message.id: self._call_done(i))  # type: ignore[misc]
        elif type(message) is HealthMsg:
            self._spawn(message.id, self._health(message.id))
        elif type(message) is ShutdownMsg:
            self.begin_stop(message.grace, "shutdown frame")

    def _bad_envelope(self, envelope: memoryview) -> None:
        assert self._envelopes is not None
        try:  # decoded again, rarely, for the error the envelope codec words
            self._envelopes.decode(envelope)
        except ProtocolError as exc:
            error = exc
        else:  # (only nesting refused by the recursion limit depends on where the decoder ran)
            error = too_deep(f"{self._codec} envelope", envelope)
        _log.error("ignoring a frame from the host: %s", error.message)
        # Answered for its id when that much can be read (a call with a bad field fails
        # at once instead of waiting for its timeout), else for id 0.
        self._send(ErrorMsg(id=readable_id(envelope, self._codec), code=error.code, message=error.message))

    def frame_error(self, error: ProtocolError) -> None:
        _log.error("the host broke the framing rules: %s", error.message)
        self._send(ErrorMsg(code=error.code, message=error.message), handshake=self._envelopes is None)
        self._finish(EXIT_REFUSED)

    # ------------------------------------------------------------ handshake
    def _handshake(self, envelope: memoryview) -> None:
        answer = answer_hello(envelope, self.adapter, codecs=self.codecs, auth=self.auth, max_frame=self.max_frame)
        if isinstance(answer, ErrorMsg):
            self._send(answer, handshake=True)
            self._finish(EXIT_REFUSED)
            return
        codec = self._codec = answer.codec
        self._peer_max_frame = answer.peer_max_frame
        self._send(answer.reply, handshake=True)
        self._envelopes = EnvelopeCodec(codec, HostMessage)
        if codec == "json":
            self._encode_into = msgspec.json.Encoder(enc_hook=_enc_hook).encode_into
        else:
            self._encode_into = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode_into
        self._decode_request = self.adapter.request_decoder(codec)
        self._execute = self.adapter.plugin.execute if self.adapter.execute_is_async else None
        self._decode_envelope = self._envelopes.raw_decoder

    # ----------------------------------------------------------------- calls
    def _spawn(self, call_id: int, work: Any) -> None:
        if call_id in self._tasks:
            work.close()
            self._send(ErrorMsg(id=call_id, code=ErrorCode.ENVELOPE_INVALID, message=f"id {call_id} is already in use"))
            return
        task = self._starter.start(work)
        if task is None:  # answered already; its `finally` ran before it could be tracked
            return
        self._tasks[call_id] = task
        # A task cancelled before its first step never runs its body: clean up after it.
        # (Finished calls clean up in their own `finally`, which saves a loop iteration.)
        self._update_reading()

    async def _call(self, call_id: int, payload: bytes, wire_ctx: Any) -> None:  # noqa: PLR0915 (one frame per call, on purpose)
        # One coroutine per call, its answer and clean-up included: each frame costs on every call.
        deadline = wire_ctx.deadline
        remaining = deadline - time.time() if deadline else None
        ctx = ExecutionContext(
            request_id=wire_ctx.request_id,
            timeout=remaining,
            headers=wire_ctx.headers,
            metadata=wire_ctx.metadata,
        )
        reply: ResultMsg | ErrorMsg | None = None
        frame: bytearray | None = None
        try:
            if remaining is not None and remaining <= 0:
                raise TimeoutError  # already late: do not start work nobody waits for
            # No timer per call: when the deadline passes the host sends `cancel`.
            execute = self._execute
            if execute is None:
                result = await self.adapter.execute(ctx, payload, self._codec)
                reply = ResultMsg(id=call_id, payload=msgspec.Raw(result))
            else:
                # `PluginAdapter.execute` inlined for `async def execute`, with the same errors:
                # no adapter frame, and the answer is encoded into its envelope in one pass.
                try:
                    request = self._decode_request(payload)
                except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                    request = self.adapter.request_codec(self._codec).decode(payload)  # raises, worded
                try:
                    result = await execute(ctx, request)
                except (PluginError, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    raise ExecutionError(f"{type(exc).__name__}: {exc}") from exc
                # The answer is encoded straight into the frame that goes out: during a read,
                # the write that gathers the read's answers (`_take` sends it after the read).
                gathered = self._in_read
                if gathered:
                    frame = self._corked
                    if frame is None:
                        frame = self._corked = bytearray()
                else:
                    frame = bytearray()
                start = len(frame)
                try:
                    self._encode_into(InlineResultMsg(call_id, result), frame, start + _HEADER)
                except Exception:  # worded by the adapter, from encoding once more
                    del frame[start:]
                    frame = None
                    reply = ResultMsg(id=call_id, payload=msgspec.Raw(self.adapter.encode_result(result, self._codec)))
                else:
                    if gathered:  # (else a frame of its own: `_send_result` packs or refuses it)
                        size = len(frame) - start - _HEADER
                        if size <= self._peer_max_frame:
                            pack_length(frame, start, size)
                            frame = None  # in the gathered write
                        else:  # taken out again, and refused below, the general way
                            whole = frame[start:]
                            del frame[start:]
                            frame = whole
        except asyncio.CancelledError:
            if call_id not in self._cancelled_by_host:  # else the host gave up and ignores any answer
                reply = ErrorMsg(
                    id=call_id,
                    code=ErrorCode.OUTCOME_UNKNOWN,
                    message="cancelled: the plugin stopped before the call finished",
                    retryable=True,
                )
        except TimeoutError:
            reply = ErrorMsg(id=call_id, code=ErrorCode.TIMEOUT, message="the call's deadline passed", retryable=True)
        except PluginError as exc:
            reply = ErrorMsg(id=call_id, code=exc.code, message=exc.message, retryable=exc.retryable)
        except Exception as exc:
            _log.exception("call %d failed", call_id)
            reply = ErrorMsg(id=call_id, code=ErrorCode.EXECUTION_FAILED, message=f"{type(exc).__name__}: {exc}")
        finally:
            if frame is not None:
                self._send_result(call_id, frame)  # a frame of its own (packed, or too large)
            elif reply is not None:
                self._send(reply)
            # A call answered in its first step was never tracked: nothing to clean up.
            tasks = self._tasks
            if tasks and tasks.pop(call_id, None) is not None:
                self._cancelled_by_host.discard(call_id)
                self._update_reading()

    async def _health(self, call_id: int) -> None:
        reply: ResultMsg | ErrorMsg | None = None
        try:
            status = await self.adapter.health()
            reply = ResultMsg(id=call_id, payload=msgspec.Raw(encode(status, self._codec)))
        except asyncio.CancelledError:
            pass  # no answer: the host gave up, or the server is stopping
        except PluginError as exc:
            reply = ErrorMsg(id=call_id, code=exc.code, message=exc.message, retryable=exc.retryable)
        except Exception as exc:
            reply = ErrorMsg(id=call_id, code=ErrorCode.HEALTH_CHECK_FAILED, message=f"{type(exc).__name__}: {exc}")
        finally:
            if reply is not None:
                self._send(reply)
            self._call_done(call_id)

    def _call_done(self, call_id: int) -> None:
        self._tasks.pop(call_id, None)
        self._cancelled_by_host.discard(call_id)
        self._update_reading()

    def _send(self, message: Any, *, handshake: bool = False) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        if handshake:
            writer.write(handshake_frame(message))
            return
        assert self._envelopes is not None
        try:
            frame = self._envelopes.frame(message, self._peer_max_frame)
        except ProtocolError as exc:  # an answer too large for the host: say so instead
            call_id = getattr(message, "id", 0)
            frame = self._envelopes.frame(ErrorMsg(id=call_id, code=exc.code, message=exc.message))
        self._push(frame)

    def _send_result(self, call_id: int, frame: bytearray) -> None:
        size = len(frame) - _HEADER
        if size > self._peer_max_frame:  # an answer too large for the host: say so instead
            max_frame = self._peer_max_frame
            message = f"a ResultMsg frame of {size} bytes exceeds the peer's limit of {max_frame} bytes"
            self._send(ErrorMsg(id=call_id, code=ErrorCode.FRAME_TOO_LARGE, message=message))
            return
        pack_length(frame, 0, size)
        self._push(frame)

    def _push_now(self, frame: bytearray) -> None:  # the plain path of `_push`
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(frame)

    def _push_batched(self, frame: bytearray) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        # The first answer since the host last wrote goes out at once; later ones in the same
        # loop turn (a burst of calls answered together) leave in one write at its end, which
        # wakes the host once instead of once per answer.
        corked = self._corked
        if corked is not None:
            corked += frame
        elif self._in_read:
            self._corked = frame  # sent at the end of the read (`buffer_updated`)
        elif self._sent_since_read:
            self._corked = frame
            asyncio.get_running_loop().call_soon(self._uncork)
        else:
            writer.write(frame)
            self._sent_since_read = True

    def _uncork(self) -> None:
        data, self._corked = self._corked, None
        writer = self._writer
        if data and writer is not None and not writer.is_closing():
            writer.write(data)

    def _update_reading(self) -> None:
        pause = self._paused_for_writes or len(self._tasks) >= self.max_concurrency
        if pause is self._paused_for_calls:  # the common case: nothing to change
            return
        reader = cast(asyncio.ReadTransport | None, self._reader)
        if reader is None or not hasattr(reader, "pause_reading") or reader.is_closing():
            return
        self._paused_for_calls = pause
        if pause:
            self.hold_frames()  # frames already received wait in the buffer
            reader.pause_reading()
        else:
            reader.resume_reading()
            self.release_frames()

    # ----------------------------------------------------------------- stop
    def _input_ended(self) -> None:
        if self.done.done() or self._stopping:
            return
        truncated = self.truncation_error()
        if truncated is not None:
            _log.warning("input ended mid-frame: %s", truncated.message)
        if self._envelopes is None:
            self._finish(EXIT_OK)
            return
        self.begin_stop(self.grace, "end of input")

    def begin_stop(self, grace: float, reason: str = "shutdown requested") -> None:
        """Stop taking calls and wind down within `grace` seconds (shutdown, EOF, SIGTERM)."""
        if self._stopping or self.done.done():
            return
        self._stopping = True
        _log.info("stopping (%s): %d calls in flight, grace %gs", reason, len(self._tasks), grace)
        self._stopper = asyncio.get_running_loop().create_task(self._stop(grace))

    async def _stop(self, grace: float) -> None:
        pending = list(self._tasks.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        try:
            await self.adapter.close()
        except Exception:
            _log.exception("close() failed")
        await self._drain_writes(min(grace, 5.0))
        self._finish(EXIT_OK)

    async def _drain_writes(self, limit: float) -> None:
        self._uncork()  # answers held for the end of this turn are the last ones: send them now
        writer = self._writer
        deadline = time.monotonic() + limit
        while writer is not None and not writer.is_closing() and writer.get_write_buffer_size():
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.005)  # rare: only while the host is slow to read our last answers

    def _finish(self, status: int) -> None:
        self._starter.close()
        if not self.done.done():
            self.done.set_result(status)
