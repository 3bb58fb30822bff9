"""The subprocess transport: plugins as supervised child processes speaking protocol v1.

The process lives as long as the transport (the manager's registration), not a request.
See docs/protocol.md for the wire protocol and `_pool.py` for supervision.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from .._clock import Clock, system_clock
from .._codec import CODECS, CodecName, Encoded, TypedCodec
from .._config import PluginConfig
from .._errors import ErrorCode, PluginError, ProcessError, RequestSent
from .._models import HealthStatus, Status, Transport
from .._protocol import DEFAULT_MAX_FRAME, CallContext
from .._tasks import TaskOwner
from ._connection import HostConnection
from ._members import C
from ._pool import PoolListener, PoolState, ProcessPool, RestartPolicy, Worker
from ._pooled import PooledTransport
from ._process import PluginProcess, describe_status, scrubbed_env
from .base import Call, attempt_timed_out

__all__ = [
    "CredentialsHook",
    "LaunchHook",
    "SubprocessOptions",
    "SubprocessTransport",
    "acquire_worker",
    "run_launch_hook",
]

LaunchHook = Callable[[list[str]], Awaitable[list[str]]]
"""Awaited before every spawn with the argv about to run; returns the argv to exec."""
CredentialsHook = Callable[[], Mapping[str, str]]
"""Returns the credentials sent in the handshake (`hello.auth`), e.g. {"authorization": ...}."""

_SOCKET_BUFFER: Final = 1024 * 1024
_EXIT_SETTLE: Final = 1.0


@dataclass(frozen=True, slots=True)
class SubprocessOptions:
    """Settings of the subprocess transport that are not in `PluginConfig`.

    Attributes:
        grace: Seconds a stopping plugin gets after the shutdown frame before SIGTERM.
        kill_after: Seconds after SIGTERM before SIGKILL.
        write_timeout: Seconds the plugin may leave the host's writes unread before the
            process is declared stuck and restarted; None uses `connection_timeout`.
        restart: Restart backoff and intensity (default: 5 restarts in 60 s).
        max_frame: The largest frame accepted from the plugin.
        codecs: Codecs offered in the handshake, preferred first.
        credentials: Called before each handshake; its result is sent as `hello.auth`.
        prepare_launch: Awaited before every spawn with the argv; returns the argv to run.
        stderr_line_limit: Bytes kept of one stderr line.
        stderr_tail: Stderr lines kept for crash reports.
        clock: Time source for restart backoff.
    """

    grace: float = 5.0
    kill_after: float = 2.0
    write_timeout: float | None = None
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    max_frame: int = DEFAULT_MAX_FRAME
    codecs: tuple[CodecName, ...] = CODECS
    credentials: CredentialsHook | None = None
    prepare_launch: LaunchHook | None = None
    stderr_line_limit: int = 8192
    stderr_tail: int = 20
    clock: Clock = system_clock


class SubprocessTransport(PooledTransport[HostConnection]):
    """Runs a plugin executable as a pool of supervised processes.

    `connection.max_connections` is the most processes: the pool starts with one and adds
    one whenever every process has a call in flight; calls go to the least loaded.
    Extra processes idle for `connection.idle_timeout` are stopped again, down to
    `connection.max_idle_connections` (at least one). `connection.connection_timeout`
    bounds each start (spawn to handshake).

    Args:
        config: The plugin's config (`executable`, `args`, `env`, `work_dir`, `connection`).
        options: Transport settings beyond the config.
        request_type: The type of the requests (None: unknown; requests are then re-encoded
            untyped for a plugin that chose another codec than the caller's).
    """

    kind = Transport.EXECUTABLE
    # One deadline timer per connection instead of the timeout policy's timer per call.
    enforces_timeout = True

    def __init__(
        self, config: PluginConfig, options: SubprocessOptions | None = None, *, request_type: Any = None
    ) -> None:
        super().__init__()
        self.config = config
        self.options = options or SubprocessOptions()
        #: The request type, for re-encoding requests typed when the plugin negotiated another
        #: codec than the caller's (answers go back as `Encoded`, decoded by the caller's type).
        self.request_type = request_type
        self._request_codecs: dict[CodecName, TypedCodec[Any]] = {}
        self.name = config.name
        #: Host-side checks awaited after `options.prepare_launch`, before every spawn, so the
        #: argv they approve is the argv that runs (the security system's verified launch).
        self.launch_guards: list[LaunchHook] = []
        # Pools replaced by `restart()` close in the background; a stop is bounded by
        # grace + kill_after, so a pool's close (twice its close_timeout at most) is too.
        self._stop_bound = self.options.grace + self.options.kill_after + 5.0
        self._tasks = TaskOwner(f"plugwire-subprocess-{self.name}", close_timeout=3 * self._stop_bound)
        #: Told of crashes, restarts and going offline (the audit log listens here).
        self.listeners: list[PoolListener] = []
        #: Variables added to the environment of every process started from now on (the
        #: tracing's `OTEL_*` and `PLUGWIRE_TRACING`, set only while tracing is on).
        self.extra_env: dict[str, str] = {}

    # --------------------------------------------------------------- lifecycle
    def _new_pool(self) -> ProcessPool[HostConnection]:
        pool = ProcessPool(
            self.name,
            self._launch,
            max_processes=self.config.connection.max_connections,
            idle_timeout=self.config.connection.idle_timeout,
            keep_idle=self.config.connection.max_idle_connections,
            policy=self.options.restart,
            clock=self.options.clock,
            stop=self._stop_worker,
            health_timeout=self.config.health_check.timeout,
            close_timeout=self._stop_bound,
        )
        pool.listeners = self.listeners
        return pool

    # ------------------------------------------------------------------- calls
    async def call(self, call: Call) -> Any:
        pool = self._pool
        if pool is None:
            raise ProcessError(f"plugin {self.name!r} is not started", plugin=self.name, request_sent=RequestSent.NO)
        timeout = call.timeout
        deadline = None
        worker = pool.pick() if pool.state is PoolState.RUNNING else None
        if worker is None:  # the pool is restarting: the wait counts against the attempt's time
            if timeout is not None:
                deadline = asyncio.get_running_loop().time() + timeout
            worker = await acquire_worker(pool, deadline, call)
        conn = worker.conn
        if timeout is not None and deadline is None:
            deadline = conn.loop_time() + timeout
        ctx = call.context
        headers = ctx.headers
        wire_ctx = CallContext(  # positional: request_id, deadline, metadata, headers, traceparent
            ctx.request_id,
            time.time() + timeout if timeout else 0.0,
            ctx.metadata,
            headers,
            ctx.traceparent or (headers.get("traceparent", "") if headers else ""),
        )
        payload = call.payload
        if call.codec != conn.codec:  # the plugin negotiated the other codec
            payload = self._transcode_request(payload, call.codec, conn.codec)
            return Encoded(await conn.call(payload, wire_ctx, deadline, call), conn.codec)
        # `conn.call` inlined: the answer's future is awaited here, one frame fewer per call.
        if conn.must_wait:
            await conn.wait_writable(deadline, call)
        call_id, answer = conn.send_call(payload, wire_ctx, deadline, call)
        try:
            return await answer
        except asyncio.CancelledError:
            conn.abandon(call_id)
            raise

    def _transcode_request(self, data: bytes, source: CodecName, target: CodecName) -> bytes:
        """Re-encode a request for a plugin that negotiated another codec than the caller's:
        through the request type when known, so bytes and non-string keys come out as
        `target` writes them (JSON to msgpack is lossy untyped: base64 text stays text)."""
        if self.request_type is not None:
            codec = self._request_codecs.get(source)
            if codec is None:
                codec = self._request_codecs[source] = TypedCodec(self.request_type, source, role="request")
            return codec.in_codec(target).encode(codec.decode(data))
        value = msgspec.json.decode(data) if source == "json" else msgspec.msgpack.decode(data)
        return msgspec.json.encode(value) if target == "json" else msgspec.msgpack.encode(value)

    async def health(self) -> HealthStatus:
        pool = self._pool
        if pool is None or pool.state is PoolState.CLOSED:
            return HealthStatus(status=Status.OFFLINE, message="not started")
        if pool.state is PoolState.OFFLINE:
            retry_in = pool.retry_in()
            meta = {"offline_tries": str(pool.offline_tries)}
            if retry_in is not None:
                meta["next_restart_in"] = f"{retry_in:.3f}"
            return HealthStatus(status=Status.OFFLINE, message=str(pool._unavailable()), metadata=meta)
        workers = [w for w in pool.workers if w.conn.alive]
        if not workers:
            return HealthStatus(status=Status.UNHEALTHY, message="restarting after a crash")
        results = await asyncio.gather(*(w.conn.health() for w in workers), return_exceptions=True)
        order = [Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY, Status.OFFLINE]
        worst: HealthStatus | None = None
        for result in results:
            status = (
                result
                if isinstance(result, HealthStatus)
                else HealthStatus(status=Status.UNHEALTHY, message=f"health check failed: {result}")
            )
            if worst is None or order.index(status.status) > order.index(worst.status):
                worst = status
        assert worst is not None
        meta = dict(worst.metadata)
        meta["processes"] = str(len(workers))
        meta["pids"] = ",".join(str(w.process.pid) for w in workers)
        return msgspec.structs.replace(worst, metadata=meta)

    # ---------------------------------------------------------- spawn / stop
    async def _launch(self) -> Worker[HostConnection]:
        """Start one plugin process through its handshake; every failure is a `PluginError`."""
        try:
            return await self._start_process()
        except PluginError:
            raise
        except OSError as exc:  # socketpair, the event loop's socket setup: out of descriptors, say
            raise ProcessError(
                f"cannot start plugin {self.name!r}: {exc}",
                code=ErrorCode.PROCESS_SPAWN_FAILED,
                plugin=self.name,
                retryable=False,
            ) from exc
        except Exception as exc:  # a user hook (credentials) raised
            raise ProcessError(
                f"starting plugin {self.name!r} failed: {type(exc).__name__}: {exc}",
                code=ErrorCode.PROCESS_LAUNCH_HOOK_FAILED,
                plugin=self.name,
            ) from exc

    async def _start_process(self) -> Worker[HostConnection]:
        argv = [self.config.executable, *self.config.args]
        argv = await self._prepare(argv)
        credentials = dict(self.options.credentials()) if self.options.credentials is not None else {}
        parent, child = socket.socketpair()
        for sock in (parent, child):
            with contextlib.suppress(OSError):  # best effort: larger frames pass in one go
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        try:
            process = await PluginProcess.spawn(
                argv,
                name=self.name,
                env=scrubbed_env({**self.extra_env, **self.config.env}, self.name),
                cwd=self.config.work_dir or None,
                channel=child,
                stderr_line_limit=self.options.stderr_line_limit,
                stderr_tail=self.options.stderr_tail,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        loop = asyncio.get_running_loop()
        write_timeout = self.options.write_timeout or self.config.connection.connection_timeout or 10.0
        conn = HostConnection(
            self.name,
            max_frame=self.options.max_frame,
            write_timeout=write_timeout,
            stall_timeout=self.config.connection.stall_timeout,
        )
        try:
            await loop.connect_accepted_socket(lambda: conn, parent)
            conn.attach_socket(parent)
        except BaseException:
            parent.close()
            process.kill()
            await asyncio.shield(process.exited)
            raise
        try:
            conn.send_hello(list(self.options.codecs), credentials)
            hello = await self._await_handshake(process, conn)
        except BaseException:
            conn.close(ProcessError("start abandoned", plugin=self.name))
            process.kill()
            await asyncio.shield(process.exited)
            raise
        return Worker(process=process, conn=conn, info=hello.info)

    async def _prepare(self, argv: list[str]) -> list[str]:
        hooks = [self.options.prepare_launch] if self.options.prepare_launch is not None else []
        for hook in [*hooks, *self.launch_guards]:
            argv = await self._run_launch_hook(hook, argv)
        return argv

    async def _run_launch_hook(self, hook: LaunchHook, argv: list[str]) -> list[str]:
        return await run_launch_hook(hook, argv, self.name)

    async def _await_handshake(self, process: PluginProcess, conn: HostConnection) -> Any:
        limit = self.config.connection.connection_timeout or None
        try:
            async with asyncio.timeout(limit):
                await asyncio.wait((conn.lost, process.exited, conn.handshake), return_when=asyncio.FIRST_COMPLETED)
                if process.exited.done() and not conn.handshake.done() and not conn.lost.done():
                    # It exited first: its last frame (an auth refusal, say) may still be unread.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_EXIT_SETTLE):
                            await asyncio.wait((conn.lost, conn.handshake), return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            got = f"{conn.buffered} bytes of a frame: {conn.peek(64)!r}" if conn.buffered else "nothing"
            raise ProcessError(
                f"plugin {self.name!r} did not complete the handshake within {limit:g}s (received {got})",
                code=ErrorCode.PROCESS_START_TIMEOUT,
                plugin=self.name,
                details={"stderr": process.stderr_tail()},
            ) from None
        if conn.handshake.done() and not conn.handshake.cancelled() and conn.handshake.exception() is None:
            return conn.handshake.result()
        if conn.lost.done():
            error = conn.lost.result()
            if error.code not in (ErrorCode.CONNECTION_LOST,):
                error.details.setdefault("stderr", process.stderr_tail())
                raise error
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_EXIT_SETTLE):
                await asyncio.shield(process.exited)
        returncode = process.exited.result() if process.exited.done() else None
        launch_error = process.launch_error() if returncode is not None else None
        if launch_error is not None:
            raise launch_error
        status = describe_status(returncode) if returncode is not None else "closed its connection"
        tail = process.stderr_tail()
        raise ProcessError(
            f"plugin {self.name!r} exited before the handshake ({status})" + (f"; stderr: {tail}" if tail else ""),
            code=ErrorCode.PROCESS_EXITED_DURING_START,
            plugin=self.name,
            details={"stderr": tail, "returncode": returncode},
        )

    async def _stop_worker(self, worker: Worker[HostConnection]) -> None:
        conn = worker.conn
        grace = self.options.grace
        await worker.process.stop(grace, self.options.kill_after, lambda: conn.send_shutdown(grace))
        conn.close(ProcessError(f"plugin {self.name!r} was stopped", code=ErrorCode.PROCESS, plugin=self.name))


async def acquire_worker(pool: ProcessPool[C], deadline: float | None, call: Call) -> Worker[C]:
    """A worker from a restarting pool, waiting no longer than the attempt's deadline."""
    if deadline is None:
        return await pool.acquire()
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            return await pool.acquire()
    except TimeoutError:
        if scope.expired():  # no process to send it to yet: the plugin never saw the request
            raise attempt_timed_out(call, RequestSent.NO) from None
        raise


async def run_launch_hook(hook: LaunchHook, argv: list[str], name: str) -> list[str]:
    """Await one launch hook; a failure or a result that is not an argv is a 1905."""
    try:
        prepared = await hook(list(argv))
    except PluginError:
        raise
    except Exception as exc:
        raise ProcessError(
            f"prepare_launch failed for plugin {name!r}: {type(exc).__name__}: {exc}",
            code=ErrorCode.PROCESS_LAUNCH_HOOK_FAILED,
            plugin=name,
        ) from exc
    if not prepared or not all(isinstance(part, str) for part in prepared):
        raise ProcessError(
            f"prepare_launch returned {prepared!r}; expected a non-empty list of strings",
            code=ErrorCode.PROCESS_LAUNCH_HOOK_FAILED,
            plugin=name,
        )
    return list(prepared)
