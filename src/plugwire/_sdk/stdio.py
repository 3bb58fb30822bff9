"""The plugin side of the stdio transport: protocol v1 over the plugin's stdin and stdout.

`StdioServer` is the asyncio adapter of the plugin's protocol session
(`_protocol.PluginSession`: framing, the table of running calls, cancels, refusals, the
batching rule, with no I/O). It performs the handshake, runs calls concurrently (bounded:
reading pauses at the limit, which pushes back on the host), honours `cancel` and deadlines,
answers `health`, and stops on `shutdown`, end of input or SIGTERM: no new calls, in-flight
calls finish or are cancelled within the grace period, then `close()`.
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
    EnvelopeCodec,
    ErrorMsg,
    HostMessage,
    InlineResultMsg,
    PluginSession,
    ResultMsg,
    handshake_frame,
    pack_length,
)
from .._seam import fast_paths
from ._eager import new_starter
from ._hello import AuthVerifier, answer_hello
from ._idle import IdleWait
from .adapter import PluginAdapter
from .tracing import PluginTracing

__all__ = ["AuthVerifier", "StdioServer"]

_log = logging.getLogger("plugwire.sdk")
EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
_HEADER: Final = 4  # a frame's length prefix


def _before_handshake(payload: Any) -> Any:
    raise RuntimeError("no call is decoded before the handshake")  # calls are refused until then


class StdioServer(asyncio.BufferedProtocol):
    """Serves one plugin on one connection; `done` resolves to the process exit status.

    Args:
        adapter: The plugin, wrapped.
        max_concurrency: Calls run at once; the connection stops reading at the limit.
        grace: Seconds in-flight calls get to finish when stopping.
        auth: Verifies the host's credentials during the handshake.
        max_frame: The largest frame accepted from the host.
        codecs: Codecs this plugin accepts, in no particular order (the host chooses).
        tracing: Runs each call in its span (`tracing.plugin_tracing()`); None: untraced,
            at no cost per call (the choice is made once, at the handshake).
    """

    # The session's own method, bound per server (a read costs no frame of the adapter's).
    get_buffer: Callable[[int], memoryview]  # type: ignore[assignment]

    def __init__(
        self,
        adapter: PluginAdapter,
        *,
        max_concurrency: int = 64,
        grace: float = 10.0,
        auth: AuthVerifier | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        codecs: tuple[CodecName, ...] = CODECS,
        tracing: PluginTracing | None = None,
    ) -> None:
        self.adapter = adapter
        self.tracing = tracing
        self.max_concurrency = max_concurrency
        self.max_frame = max_frame
        self.grace = grace
        self.auth = auth
        self.codecs = codecs
        loop = asyncio.get_running_loop()
        self._loop = loop
        #: The protocol's state (`_protocol/plugin_session.py`); the batching rule is the
        #: `batching` accelerator (else each answer goes out at once: the plain path).
        self.session = session = PluginSession(max_frame, batching=fast_paths("batching"))
        self._idle: IdleWait | None = None  # set for a socket on asyncio's epoll loop
        self.done: asyncio.Future[int] = loop.create_future()
        # A call runs up to its first suspension in the read that delivered it (in its own
        # task): one that answers at once costs no extra loop turn.
        self._starter = new_starter(loop)
        self._reader: asyncio.BaseTransport | None = None
        self._writer: asyncio.WriteTransport | None = None
        # Set by the handshake: bare encoders and decoders (their errors are worded again by
        # the slow path), and an `async def execute` to await directly (None: the adapter's way).
        self._decode_request: Callable[[Any], Any] = _before_handshake
        self._execute: Callable[..., Any] | None = None
        self._adapter_execute: Callable[..., Any] = adapter.execute  # the other way (traced when tracing)
        self._encode_into: Callable[[Any, bytearray, int], None] = msgspec.msgpack.Encoder().encode_into
        self._codec: CodecName = "msgpack"
        self._paused_for_calls = False
        self._paused_for_writes = False
        self._stopper: asyncio.Task[None] | None = None
        session.on_handshake = self._handshake
        session.on_error = self._frame_error
        session.run_call = self._call
        session.run_health = self._health
        session.start_work = self._starter.start
        session.cancel = self._cancel
        session.running_changed = self._update_reading
        session.on_shutdown = self._on_shutdown
        session.write = self._write
        session.on_hold = self._hold
        self.get_buffer = session.get_buffer

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
        session = self.session
        while (
            not session.running
            and not session.stopping
            and session.corked is None
            and not session.broken
            and not self._paused_for_calls
            and idle.readable()
        ):
            nbytes = idle.read_into(session.get_buffer(-1))
            if not nbytes:
                return
            data = session.buffer_updated(nbytes)
            if data is not None:
                writer = self._writer
                if writer is not None and not writer.is_closing():
                    writer.write(data)

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
    def buffer_updated(self, nbytes: int) -> None:
        data = self.session.buffer_updated(nbytes)
        if data is not None:
            writer = self._writer
            if writer is not None and not writer.is_closing():
                writer.write(data)
        if self._idle is not None:
            self._read_while_idle()

    def data_received(self, data: bytes) -> None:  # a pipe transport's way
        out = self.session.receive_data(data)
        if out:
            self._write(out)

    def _frame_error(self, error: ProtocolError) -> None:
        _log.error("the host broke the framing rules: %s", error.message)
        message = ErrorMsg(code=error.code, message=error.message)
        if self.session.envelopes is None:
            self._write(handshake_frame(message))
        else:
            self.session.send(message)
        self._finish(EXIT_REFUSED)

    # ------------------------------------------------------------ handshake
    def _handshake(self, envelope: memoryview) -> None:
        answer = answer_hello(envelope, self.adapter, codecs=self.codecs, auth=self.auth, max_frame=self.max_frame)
        if isinstance(answer, ErrorMsg):
            self._write(handshake_frame(answer))
            self._finish(EXIT_REFUSED)
            return
        codec = self._codec = answer.codec
        self._write(handshake_frame(answer.reply))
        if codec == "json":
            self._encode_into = msgspec.json.Encoder(enc_hook=_enc_hook).encode_into
        else:
            self._encode_into = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode_into
        self._decode_request = self.adapter.request_decoder(codec)
        execute = self.adapter.plugin.execute if self.adapter.execute_is_async else None
        tracing = self.tracing
        if tracing is not None:  # chosen once: an untraced server's calls pay nothing for tracing
            if execute is not None:
                execute = tracing.wrap(execute, "stdio")
            else:
                self._adapter_execute = tracing.wrap(self.adapter.execute, "stdio")
        self._execute = execute
        self.session.start(EnvelopeCodec(codec, HostMessage), answer.peer_max_frame)

    # ----------------------------------------------------------------- calls
    def _cancel(self, call_id: int, task: asyncio.Task[None]) -> None:
        task.cancel()
        task.add_done_callback(lambda _: self._call_done(call_id))

    def _on_shutdown(self, grace: float) -> None:
        self.begin_stop(grace, "shutdown frame")

    async def _call(self, call_id: int, payload: bytes, wire_ctx: Any) -> None:  # noqa: PLR0915 (one frame per call, on purpose)
        # One coroutine per call, its answer and clean-up included: each frame costs on every call.
        deadline = wire_ctx.deadline
        remaining = deadline - time.time() if deadline else None
        ctx = ExecutionContext(
            request_id=wire_ctx.request_id,
            timeout=remaining,
            headers=wire_ctx.headers,
            metadata=wire_ctx.metadata,
            traceparent=wire_ctx.traceparent,
        )
        session = self.session
        reply: ResultMsg | ErrorMsg | None = None
        frame: bytearray | None = None
        try:
            if remaining is not None and remaining <= 0:
                raise TimeoutError  # already late: do not start work nobody waits for
            # No timer per call: when the deadline passes the host sends `cancel`.
            execute = self._execute
            if execute is None:
                result = await self._adapter_execute(ctx, payload, self._codec)
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
                # the write that gathers the read's answers (the session's batching rule,
                # `Session.push`, inlined for this one case: no frame of its own to copy).
                gathered = session.in_read
                if gathered:
                    frame = session.corked
                    if frame is None:
                        frame = session.corked = bytearray()
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
                    if gathered:  # (else a frame of its own: `send_result_frame` packs or refuses it)
                        size = len(frame) - start - _HEADER
                        if size <= session.peer_max_frame:
                            pack_length(frame, start, size)
                            frame = None  # in the gathered write
                        else:  # taken out again, and refused below, the general way
                            whole = frame[start:]
                            del frame[start:]
                            frame = whole
        except asyncio.CancelledError:
            if call_id not in session.cancelled_by_host:  # else the host gave up and ignores any answer
                reply = ErrorMsg(
                    id=call_id,
                    code=ErrorCode.OUTCOME_UNKNOWN,
                    message="cancelled: the plugin stopped before the call finished",
                    retryable=True,
                )
        except PluginError as exc:  # (before TimeoutError: a plugin's PluginTimeoutError keeps its words)
            reply = ErrorMsg(id=call_id, code=exc.code, message=exc.message, retryable=exc.retryable)
        except TimeoutError:
            reply = ErrorMsg(id=call_id, code=ErrorCode.TIMEOUT, message="the call's deadline passed", retryable=True)
        except Exception as exc:
            _log.exception("call %d failed", call_id)
            reply = ErrorMsg(id=call_id, code=ErrorCode.EXECUTION_FAILED, message=f"{type(exc).__name__}: {exc}")
        finally:
            if frame is not None:
                session.send_result_frame(call_id, frame)  # a frame of its own (packed, or too large)
            elif reply is not None:
                session.send(reply)
            # A call answered in its first step was never tracked: nothing to clean up.
            if session.running and session.finish(call_id):
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
                self.session.send(reply)
            self._call_done(call_id)

    def _call_done(self, call_id: int) -> None:
        self.session.finish(call_id)
        self._update_reading()

    def _write(self, data: bytearray | bytes) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(data)

    def _hold(self) -> None:
        self._loop.call_soon(self._uncork)

    def _uncork(self) -> None:
        data = self.session.take_held()
        if data is not None:
            self._write(data)

    def _update_reading(self) -> None:
        pause = self._paused_for_writes or len(self.session.running) >= self.max_concurrency
        if pause is self._paused_for_calls:  # the common case: nothing to change
            return
        reader = cast(asyncio.ReadTransport | None, self._reader)
        if reader is None or not hasattr(reader, "pause_reading") or reader.is_closing():
            return
        self._paused_for_calls = pause
        if pause:
            self.session.hold_frames()  # frames already received wait in the buffer
            reader.pause_reading()
        else:
            reader.resume_reading()
            self.session.release_frames()

    # ----------------------------------------------------------------- stop
    def _input_ended(self) -> None:
        if self.done.done() or self.session.stopping:
            return
        truncated = self.session.truncation_error()
        if truncated is not None:
            _log.warning("input ended mid-frame: %s", truncated.message)
        if self.session.envelopes is None:
            self._finish(EXIT_OK)
            return
        self.begin_stop(self.grace, "end of input")

    def begin_stop(self, grace: float, reason: str = "shutdown requested") -> None:
        """Stop taking calls and wind down within `grace` seconds (shutdown, EOF, SIGTERM)."""
        if self.session.stopping or self.done.done():
            return
        self.session.stopping = True
        _log.info("stopping (%s): %d calls in flight, grace %gs", reason, len(self.session.running), grace)
        self._stopper = asyncio.get_running_loop().create_task(self._stop(grace))

    async def _stop(self, grace: float) -> None:
        pending = list(self.session.running.values())
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
