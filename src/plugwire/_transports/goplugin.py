"""The go-plugin transport: a HashiCorp go-plugin plugin (gRPC protocol) run and supervised
by a plugwire host.

One process per plugin (gRPC multiplexes every call over its socket), supervised by the
same process pool as subprocess plugins: restart with backoff after a crash, offline after
too many, health-checked replacements, launch guards (the security system's verified
launch) before every spawn, lifecycle events for the audit log. `_golaunch.py` starts one
process. Calls: `plugwire.v1.Plugin` plugins through `manager.execute` (the gRPC
transport's call path over the plugin's channel); any plugin through `manager.channel(name)`
(`_gochannel.py`), a `grpc.aio` channel that follows the current process across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from .._clock import Clock, system_clock
from .._config import PluginConfig
from .._errors import ErrorCode, PluginError, ProcessError, ProtocolError, RequestSent
from .._goplugin import HandshakeConfig
from .._models import ExecutionContext, HealthStatus, Status, Transport
from .._proto import load
from .._tasks import TaskOwner
from ._golaunch import PLUGWIRE_SERVICE, GoConnection, GoLaunch, launch_go_plugin
from ._pool import PoolListener, PoolState, ProcessPool, RestartPolicy, Worker
from ._pooled import PooledTransport
from ._process import describe_status
from .base import Call
from .subprocess import LaunchHook, acquire_worker, run_launch_hook

__all__ = ["PLUGWIRE_SERVICE", "GoPluginOptions", "GoPluginTransport"]

_log = logging.getLogger("plugwire.transport.goplugin")
_NO_CONTEXT = ExecutionContext(request_id="channel")
_CLOSE_GRACE = 5.0
"""Seconds a closed process's channel leaves its RPCs to fail by themselves (its process is
gone: they end at once with UNAVAILABLE) before cancelling them."""


@dataclass(frozen=True, slots=True)
class GoPluginOptions:
    """Settings of the go-plugin transport that are not in `PluginConfig`.

    Attributes:
        grace: Seconds a plugin gets to exit after `GRPCController.Shutdown` before SIGTERM
            to its process group (go-plugin's own hosts wait 2 s, then kill).
        kill_after: Seconds after SIGTERM before SIGKILL.
        app_versions: The app protocol versions offered in `PLUGIN_PROTOCOL_VERSIONS`;
            empty: the handshake's `protocol_version` only.
        min_port: `PLUGIN_MIN_PORT` (a plugin on TCP listens in this range).
        max_port: `PLUGIN_MAX_PORT`.
        restart: Restart backoff and intensity (default: 5 restarts in 60 s).
        prepare_launch: Awaited before every spawn with the argv; returns the argv to run.
        stderr_line_limit: Bytes kept of one stderr line.
        stderr_tail: Stderr lines kept for crash reports.
        clock: Time source for restart backoff.
    """

    grace: float = 2.0
    kill_after: float = 2.0
    app_versions: tuple[int, ...] = ()
    min_port: int = 10000
    max_port: int = 25000
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    prepare_launch: LaunchHook | None = None
    stderr_line_limit: int = 8192
    stderr_tail: int = 20
    clock: Clock = system_clock


class GoPluginTransport(PooledTransport[GoConnection]):
    """Runs a go-plugin plugin executable as one supervised process.

    Args:
        config: The plugin's config (`executable`, `args`, `env`, `work_dir`, `connection`,
            `health_check`).
        handshake: The magic cookie and app protocol version the plugin expects.
        service: The gRPC service the plugin serves: `"plugwire.v1.Plugin"` (then
            `execute` works) or the name of its own (then only `channel()` reaches it).
        options: Transport settings beyond the config.
    """

    kind = Transport.GO_PLUGIN
    enforces_timeout = True  # each call carries `Call.timeout` as its gRPC deadline

    def __init__(
        self,
        config: PluginConfig,
        handshake: HandshakeConfig,
        *,
        service: str = PLUGWIRE_SERVICE,
        options: GoPluginOptions | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.name = config.name
        self.handshake = handshake
        self.service = service
        self.options = options or GoPluginOptions()
        self._mods = load()
        self._launch_settings = GoLaunch(
            config=config,
            handshake=handshake,
            service=service,
            app_versions=self.options.app_versions or (handshake.protocol_version,),
            min_port=self.options.min_port,
            max_port=self.options.max_port,
            stderr_line_limit=self.options.stderr_line_limit,
            stderr_tail=self.options.stderr_tail,
        )
        #: Host-side checks awaited after `options.prepare_launch`, before every spawn (the
        #: security system's verified launch), as on the subprocess transport.
        self.launch_guards: list[LaunchHook] = []
        #: Told of crashes, restarts and going offline (the audit log listens here).
        self.listeners: list[PoolListener] = []
        self._stop_bound = self.options.grace + self.options.kill_after + 5.0
        # Channels of exited processes and replaced pools close here, in the background.
        self._tasks = TaskOwner(f"plugwire-goplugin-{self.name}", close_timeout=3 * self._stop_bound)

    # --------------------------------------------------------------- lifecycle
    def _new_pool(self) -> ProcessPool[GoConnection]:
        pool: ProcessPool[GoConnection] = ProcessPool(
            self.name,
            self._launch,
            max_processes=1,
            policy=self.options.restart,
            clock=self.options.clock,
            stop=self._stop_worker,
            health_timeout=self.config.health_check.timeout,
            close_timeout=self._stop_bound,
        )
        pool.listeners = self.listeners
        return pool

    def current(self) -> GoConnection | None:
        """The live process's connection, or None while there is none (restarting, offline, closed)."""
        pool = self._pool
        if pool is None or pool.state is not PoolState.RUNNING:
            return None
        worker = pool.pick()
        return None if worker is None else worker.conn

    async def acquire(self, timeout: float | None) -> GoConnection:
        """The live process's connection, waiting up to `timeout` seconds while it restarts.

        Raises:
            PluginUnavailableError: The plugin is offline (1602).
            TransportError: The transport is closed (1302).
            PluginTimeoutError: No process came within `timeout` (1204).
        """
        pool = self._pool
        if pool is None:
            raise ProcessError(f"plugin {self.name!r} is not started", plugin=self.name, request_sent=RequestSent.NO)
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        call = Call(self.name, b"", _NO_CONTEXT, timeout=timeout)
        worker = await acquire_worker(pool, deadline, call)
        return worker.conn

    # ------------------------------------------------------------------- calls
    async def call(self, call: Call) -> Any:
        conn = self.current()
        if conn is None:
            conn = await self.acquire(call.timeout)
        rpc = conn.rpc
        if rpc is None:
            raise ProtocolError(
                f"plugin {self.name!r} serves {self.service!r}, not {PLUGWIRE_SERVICE!r}: call its service "
                "through manager.channel(name) with its own stubs",
                code=ErrorCode.GO_NOT_PLUGWIRE_SERVICE,
                plugin=self.name,
                retryable=False,
                request_sent=RequestSent.NO,
            )
        return await rpc.call(call)

    async def health(self) -> HealthStatus:
        pool = self._pool
        if pool is None or pool.state is PoolState.CLOSED:
            return HealthStatus(status=Status.OFFLINE, message="not started")
        if pool.state is PoolState.OFFLINE:
            return HealthStatus(status=Status.OFFLINE, message=str(pool._unavailable()))
        conn = self.current()
        if conn is None:
            return HealthStatus(status=Status.UNHEALTHY, message="restarting after a crash")
        try:
            status = await conn.health()
        except PluginError as exc:
            return HealthStatus(status=Status.UNHEALTHY, message=f"health check failed: {exc}")
        workers = pool.workers
        pid = str(workers[0].process.pid) if workers else ""
        return HealthStatus(status=status.status, message=status.message, metadata={**status.metadata, "pids": pid})

    # ---------------------------------------------------------- spawn / stop
    async def _launch(self) -> Worker[GoConnection]:
        argv = [self.config.executable, *self.config.args]
        hooks = [self.options.prepare_launch] if self.options.prepare_launch is not None else []
        for hook in [*hooks, *self.launch_guards]:
            argv = await run_launch_hook(hook, argv, self.name)
        process, conn, info = await launch_go_plugin(argv, self._launch_settings, self._mods, on_close=self._closed)
        return Worker(process=process, conn=conn, info=info)

    def _closed(self, channel: Any) -> None:
        """A process's connection was closed: close its channel in the background, with a
        grace: closing cancels the RPCs still in flight, and a user's RPC must end with the
        error gRPC reports for a process that went away (UNAVAILABLE), never with a
        CancelledError it did not ask for."""
        if not self._tasks.closed:
            self._tasks.start(channel.close(grace=_CLOSE_GRACE), name="close a plugin's channel", shielded=True)

    async def _stop_worker(self, worker: Worker[GoConnection]) -> None:
        """`GRPCController.Shutdown`, `grace` for the exit, then SIGTERM and SIGKILL to the group."""
        conn, process = worker.conn, worker.process
        grace = self.options.grace
        if process.running:
            await conn.shutdown(grace)
        # Asked: wait out the grace for the exit, then SIGTERM and SIGKILL to the group.
        code = await process.stop(grace, self.options.kill_after, _asked)
        if code < 0:
            _log.warning(
                "plugin %r (process %d) did not exit within %gs of GRPCController.Shutdown (%s)",
                self.name,
                process.pid,
                grace,
                describe_status(code),
            )
        channel = conn.channel
        conn.close(ProcessError(f"plugin {self.name!r} was stopped", code=ErrorCode.PROCESS, plugin=self.name))
        if self._tasks.closed:  # the pool's own close: nothing runs in the background any more
            await channel.close(grace=_CLOSE_GRACE)


def _asked() -> None:
    """The shutdown request `PluginProcess.stop` makes: already sent (`GRPCController.Shutdown`)."""
