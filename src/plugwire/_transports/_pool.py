"""A supervised pool of plugin processes: least-loaded dispatch, growth, crash handling.

The pool starts with one process and grows on demand, one process at a time, while every
process has a call in flight, up to `max_processes`. A process that dies fails its calls
at once (through its connection), is logged with its exit status and last stderr lines,
and is replaced: at once if others remain (on demand), else after an exponential backoff.
More than `max_restarts` crash incidents (`_restarts.py`: one event that kills many
processes is one) within `window` seconds mark the plugin offline: calls fail fast with
`PluginUnavailableError` (1602). After `window` seconds the supervisor tries one start
again, then again after a wait growing by `multiplier` up to `max_offline_backoff`
(`next_restart_at`); a start that passes its handshake and a health check brings the plugin
back. A replacement that passes both is announced to the listeners as `ready` (the plugin's
circuit breaker listens).

Every background task of the pool (growth, idle reaping, what follows a crash, recovery
from offline, stopping a process) belongs to its `TaskOwner`; `aclose()` cancels the
supervision, waits for the stops, and reaps every process. Calls never touch the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final, Generic

from .._clock import Clock
from .._errors import ErrorCode, PluginError, PluginUnavailableError, ProcessError, RequestSent, TransportError
from .._models import PluginInfo
from .._tasks import TaskOwner
from ._members import C, Launcher, PoolListener, PoolState, Worker, first_health
from ._process import PluginProcess, describe_status
from ._restarts import CrashIncidents, RestartPolicy

__all__ = ["PoolListener", "PoolState", "ProcessPool", "RestartPolicy", "Worker"]

_log = logging.getLogger("plugwire.transport.subprocess")
_SUSPECT: Final = 1 << 20
"""The weight `pick` adds to a process that may be stuck: above any real load."""


class ProcessPool(Generic[C]):
    """Owns every process of one plugin and the tasks that supervise them.

    Args:
        name: The plugin's name.
        launch: Starts one process and completes its handshake.
        max_processes: The most processes at once (`connection.max_connections`).
        idle_timeout: Seconds without calls after which an extra process is stopped
            (`connection.idle_timeout`); 0 keeps every process.
        keep_idle: Processes kept however idle (`connection.max_idle_connections`, at least 1).
        policy: Restart backoff and intensity.
        clock: Time source for backoff and the crash window.
        stop: Stops one worker gracefully (shutdown frame, grace, SIGTERM, SIGKILL).
        health_timeout: Seconds a replacement process has to answer its first health check.
        close_timeout: Seconds `aclose()` waits for processes being stopped in the background
            (at least `stop`'s own bound: a stop cut short would leave its process running).
    """

    def __init__(
        self,
        name: str,
        launch: Launcher[C],
        *,
        max_processes: int,
        idle_timeout: float = 0.0,
        keep_idle: int = 1,
        policy: RestartPolicy,
        clock: Clock,
        stop: Callable[[Worker[C]], Coroutine[Any, Any, None]],
        health_timeout: float = 5.0,
        close_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self._launch = launch
        self._stop_worker = stop
        self.max_processes = max_processes
        self.idle_timeout = idle_timeout
        self.keep_idle = max(keep_idle, 1)
        self.policy = policy
        self.clock = clock
        self.health_timeout = health_timeout
        self.state = PoolState.NEW
        self.workers: list[Worker[C]] = []
        self.info: PluginInfo | None = None
        self._crashes = CrashIncidents(policy, clock)
        self._adopted = 0
        #: When (on `clock`) the supervisor next tries to bring an offline plugin back.
        self.next_restart_at: float | None = None
        self.offline_tries = 0
        self._ready = asyncio.Event()
        #: Supervision (growth, idle reaping, crash handling, recovery) and background stops.
        self._tasks = TaskOwner(f"plugwire-pool-{name}", close_timeout=close_timeout)
        self._growing = False
        self._restarting = False
        self._offline_reason: PluginError | None = None
        self._changed = asyncio.Event()
        self._dying: set[PluginProcess] = set()
        self.restarts = 0
        self.listeners: list[PoolListener] = []

    def _emit(self, event: str, **fields: Any) -> None:
        """Tell every listener about a lifecycle event; a listener that raises is logged."""
        for listener in list(self.listeners):
            try:
                listener(event, fields)
            except Exception:
                _log.exception("plugin %r: a lifecycle listener failed on %r", self.name, event)

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> PluginInfo:
        """Start the first process; its failure is raised (no restart on first start)."""
        worker = await self._launch()
        self._adopt(worker)
        self.state = PoolState.RUNNING
        if self.idle_timeout > 0 and self.max_processes > self.keep_idle:
            self._tasks.start(self._reap_idle(), name="reap idle processes")
        return worker.info

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds, re-checking whenever a process is added or lost
        or the state changes (for tests and tools; no polling)."""
        while not predicate():
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _adopt(self, worker: Worker[C]) -> None:
        worker.idle_since = self.clock.monotonic()
        self._adopted += 1
        worker.seq = self._adopted
        self.workers.append(worker)
        self.info = worker.info
        self._ready.set()
        self._notify()
        worker.conn.lost.add_done_callback(lambda _: self._lost(worker))
        worker.process.exited.add_done_callback(lambda _: self._lost(worker))

    async def aclose(self) -> None:
        """Stop every process gracefully and end the supervision tasks; idempotent."""
        self.state = PoolState.CLOSED
        self._ready.set()  # wake waiters so they see CLOSED
        workers, self.workers = self.workers, []
        for worker in workers:
            self._retire(worker)  # stopped beside those already stopping, all awaited below
        await self._tasks.aclose()  # supervision cancelled, stops awaited
        # Crashed processes whose supervision task was just cancelled: reap them too.
        await asyncio.gather(*(asyncio.shield(p.exited) for p in self._dying), return_exceptions=True)

    # -------------------------------------------------------------- dispatch
    def pick(self) -> Worker[C] | None:
        """The least-loaded live worker; asks for growth when every worker is busy.

        A process whose calls time out with no answer since (`StallWatch.suspect`) weighs as
        if it were full: calls go to the others while any is live, and growth is asked for
        beside it, until it answers again or its connection is declared stuck (1311)."""
        workers = self.workers
        if self.max_processes == 1 and len(workers) == 1:  # one process, no growth: nothing to weigh
            worker = workers[0]
            return worker if worker.conn.alive else None
        best: Worker[C] | None = None
        best_load = 1 << 30
        for worker in workers:
            conn = worker.conn
            load = conn.inflight
            if conn.stalls.silent_since is not None and conn.stalls.suspect():
                load += _SUSPECT  # a last resort
            if load < best_load and conn.alive:
                best, best_load = worker, load
        # Grow only beside a busy live worker: with none left, the restart loop (and its
        # backoff) brings the pool back, not every waiting call.
        if (
            best is not None
            and best_load
            and not self._growing
            and len(self.workers) < self.max_processes
            and self.state is PoolState.RUNNING
        ):
            self._growing = True
            self._tasks.start(self._grow(), name="grow")
        return best

    async def acquire(self) -> Worker[C]:
        """A worker to call; waits while the pool restarts.

        Raises:
            PluginUnavailableError: The plugin is offline (1602).
            TransportError: The transport is closed (1302).
        """
        while True:
            if self.state is PoolState.OFFLINE:
                raise self._unavailable()
            if self.state is PoolState.CLOSED:
                raise TransportError(
                    "the subprocess transport is closed",
                    code=ErrorCode.CONNECTION_LOST,
                    plugin=self.name,
                    request_sent=RequestSent.NO,
                )
            worker = self.pick()
            if worker is not None:
                return worker
            self._ready.clear()
            await self._ready.wait()

    def _unavailable(self) -> PluginUnavailableError:
        retry_in = self.retry_in()
        when = f"next restart attempt in {retry_in:.3g}s" if retry_in is not None else "restarting"
        error = PluginUnavailableError(
            f"plugin {self.name!r} is offline after {len(self._crashes)} crash incidents within "
            f"{self.policy.window:g}s; {when} (or reload or re-register it)",
            plugin=self.name,
            details={"next_restart_in": retry_in, "offline_tries": self.offline_tries},
        )
        error.__cause__ = self._offline_reason
        return error

    @property
    def incidents(self) -> int:
        """Crash incidents counted within the restart window (as of the latest one)."""
        return len(self._crashes)

    def retry_in(self) -> float | None:
        """Seconds until the supervisor next tries to bring an offline plugin back (None: not waiting)."""
        if self.next_restart_at is None:
            return None
        return max(0.0, self.next_restart_at - self.clock.monotonic())

    # ---------------------------------------------------------- supervision
    def _retire(self, worker: Worker[C]) -> None:
        """Stop a worker in the background; `aclose` waits for it to end (a stop cut short
        would leave its process running), so its task is shielded from the close.

        Once the pool is closing (a supervision task cut short by it retires a process it
        had just started), the process is killed instead, and `aclose` reaps it.
        """
        worker.retired = True
        if not self._tasks.closed:
            self._tasks.start(self._stop_worker(worker), name=f"stop process {worker.process.pid}", shielded=True)
            return
        worker.conn.close(ProcessError("the pool is closed", code=ErrorCode.PROCESS, plugin=self.name))
        worker.process.kill()
        self._track_dying(worker.process)

    def _track_dying(self, process: PluginProcess) -> None:
        if process.running:
            self._dying.add(process)
            process.exited.add_done_callback(lambda _: self._dying.discard(process))

    def _supervision_failed(self, error: BaseException) -> None:
        """A crash's supervision task failed (a bug, logged by the task owner). With no
        process left nothing would start one again and calls would wait forever: go offline
        instead, so they fail fast and the recovery schedule begins."""
        if self.state is PoolState.RUNNING and not self.workers:
            self._go_offline(ProcessError(f"supervision failed: {type(error).__name__}: {error}", plugin=self.name))

    async def _grow(self) -> None:
        try:
            worker = await self._launch()
        except Exception as exc:  # an extra process is optional: the pool goes on without it
            _log.warning("plugin %r: could not start an extra process: %s", self.name, exc)
            return
        finally:
            self._growing = False
        if self.state is not PoolState.RUNNING:
            self._retire(worker)
            return
        self._adopt(worker)
        _log.info("plugin %r: grew to %d processes", self.name, len(self.workers))

    async def _reap_idle(self) -> None:
        """Stop extra processes that have been idle for `idle_timeout` (checked twice per period).

        A process is idle from the first look that finds no call in flight and none started
        since the look before; it is stopped at the first look `idle_timeout` after that
        (so after at least `idle_timeout` without calls, and at most about twice that). Calls
        are counted by their connection, not timed one by one on the way.
        """
        while self._open():  # offline too: the pool may come back
            await self.clock.sleep(self.idle_timeout / 2)
            now = self.clock.monotonic()
            for worker in reversed(list(self.workers)):  # newest first: the oldest stays
                if len(self.workers) <= self.keep_idle:
                    break
                conn = worker.conn
                started = conn.calls_started
                if conn.inflight or started != worker.seen_calls:
                    worker.seen_calls = started
                    worker.idle_since = None
                    continue
                if worker.idle_since is None:
                    worker.idle_since = now
                if now - worker.idle_since < self.idle_timeout:
                    continue
                self.workers.remove(worker)
                self._notify()
                _log.info("plugin %r: stopping idle process %d", self.name, worker.process.pid)
                self._retire(worker)

    def _lost(self, worker: Worker[C]) -> None:
        if worker.retired:
            return
        worker.retired = True
        with contextlib.suppress(ValueError):
            self.workers.remove(worker)
        self._notify()
        reason = (
            worker.conn.lost.result()
            if worker.conn.lost.done()
            else ProcessError(
                f"plugin process {worker.process.pid} exited ({describe_status(worker.process.exited.result())})",
                code=ErrorCode.PROCESS_CRASHED,
                plugin=self.name,
            )
        )
        # Before the lost calls' callers resume: they then share the incident's root cause.
        new_incident = self._crashes.join(worker.seq, self._adopted, reason)
        # Fail the in-flight calls now; do not wait for the exit to be reaped.
        worker.conn.close(reason)
        worker.process.kill()
        self._track_dying(worker.process)
        if self.state is PoolState.CLOSED:
            return
        self._tasks.start(
            self._after_crash(worker, reason, new_incident),
            name=f"after the exit of process {worker.process.pid}",
            on_error=self._supervision_failed,
        )

    async def _after_crash(self, worker: Worker[C], reason: PluginError, new_incident: bool) -> None:
        returncode = await asyncio.shield(worker.process.exited)
        tail = worker.process.stderr_tail()
        _log.error(
            "plugin %r process %d exited unexpectedly (%s): %s%s",
            self.name,
            worker.process.pid,
            describe_status(returncode),
            reason.message,
            f"\nlast stderr lines:\n{tail}" if tail else "",
        )
        self._emit("crashed", pid=worker.process.pid, status=describe_status(returncode), reason=reason.message)
        if new_incident and self._record_crash(reason):
            return
        if not self.workers:
            replacement = await self._restart_loop()
            if replacement is not None:
                await self._announce_ready(replacement)

    def _running(self) -> bool:
        # A method, not an inline comparison: the state changes across awaits.
        return self.state is PoolState.RUNNING

    def _open(self) -> bool:
        return self.state is not PoolState.CLOSED

    def _offline(self) -> bool:
        return self.state is PoolState.OFFLINE

    def _record_crash(self, reason: PluginError, *, failed_restart: bool = False) -> bool:
        """Count an incident (a new one, or a failed restart); returns True when it made the
        plugin offline."""
        over = self._crashes.record_failed_restart() if failed_restart else self._crashes.record()
        if over:
            self._go_offline(reason)
        return over

    def _go_offline(self, reason: PluginError) -> None:
        if self.state is not PoolState.RUNNING:
            return
        self.state = PoolState.OFFLINE
        self._offline_reason = reason
        self._notify()
        _log.error(
            "plugin %r is offline: %d crash incidents within %gs (last: %s); next try in %.3gs",
            self.name,
            len(self._crashes),
            self.policy.window,
            reason.message,
            self.policy.offline_backoff(0),
        )
        self._ready.set()
        workers, self.workers = self.workers, []
        for worker in workers:
            self._retire(worker)
        self.offline_tries = 0
        self.next_restart_at = self.clock.monotonic() + self.policy.offline_backoff(0)
        self._emit("offline", crashes=len(self._crashes), reason=reason.message, retry_in=self.retry_in())
        self._tasks.start(self._recover(), name="recover from offline")

    async def _recover(self) -> None:
        """Bring an offline pool back: one start after `window`, then with a growing wait."""
        while self._offline() and self.next_restart_at is not None:
            await self.clock.sleep(max(0.0, self.next_restart_at - self.clock.monotonic()))
            if not self._offline():
                return
            self.offline_tries += 1
            worker = None
            try:
                worker = await self._launch()
                status = await first_health(worker, self.health_timeout, self.name)
            except BaseException as exc:
                if worker is not None:
                    self._retire(worker)
                if not isinstance(exc, Exception):
                    raise
                if not isinstance(exc, PluginError):
                    exc = ProcessError(f"restart failed: {type(exc).__name__}: {exc}", plugin=self.name)
                self._offline_reason = exc
                self.next_restart_at = self.clock.monotonic() + self.policy.offline_backoff(self.offline_tries)
                _log.error(
                    "plugin %r is still offline: try %d failed (%s); next try in %.3gs",
                    self.name,
                    self.offline_tries,
                    exc.message,
                    self.next_restart_at - self.clock.monotonic(),
                )
                self._notify()
                continue
            if not self._offline():
                self._retire(worker)
                return
            self._crashes.clear()
            self._offline_reason = None
            self.next_restart_at = None
            self.state = PoolState.RUNNING
            self.restarts += 1
            self._adopt(worker)
            _log.warning("plugin %r is back online (process %d)", self.name, worker.process.pid)
            self._emit("restarted", pid=worker.process.pid, restarts=self.restarts)
            self._emit("ready", pid=worker.process.pid, status=status)

    async def _announce_ready(self, worker: Worker[C]) -> None:
        """Tell the listeners (the breaker) once a replacement has passed a health check."""
        try:
            status = await first_health(worker, self.health_timeout, self.name)
        except PluginError as exc:
            _log.warning("plugin %r: restarted process %d is not ready: %s", self.name, worker.process.pid, exc.message)
            return
        if not worker.retired:
            self._emit("ready", pid=worker.process.pid, status=status)

    async def _restart_loop(self) -> Worker[C] | None:
        """Start a process for an empty pool, with backoff; the process adopted, or None."""
        if self._restarting:
            return None
        self._restarting = True
        adopted = None
        try:
            while self.state is PoolState.RUNNING and not self.workers:
                delay = self.policy.backoff(len(self._crashes))
                _log.info("plugin %r: restarting in %.3gs", self.name, delay)
                await self.clock.sleep(delay)
                if not self._running():
                    return None
                try:
                    worker = await self._launch()
                except Exception as exc:  # any failure counts as a crash; the loop must go on
                    if not isinstance(exc, PluginError):
                        exc = ProcessError(f"restart failed: {type(exc).__name__}: {exc}", plugin=self.name)
                    _log.error("plugin %r: restart failed: %s", self.name, exc)
                    if self._record_crash(exc, failed_restart=True):
                        return None
                    continue
                if not self._running():
                    self._retire(worker)
                    return None
                self.restarts += 1
                self._adopt(worker)
                adopted = worker
                _log.info("plugin %r restarted (process %d)", self.name, worker.process.pid)
                self._emit("restarted", pid=worker.process.pid, restarts=self.restarts)
        finally:
            self._restarting = False
        return adopted
