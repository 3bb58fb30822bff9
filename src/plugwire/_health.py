"""Health monitoring: check each plugin on a schedule, keep its status, and recover it.

One `HealthMonitor` per plugin. Its checks never overlap (a check asked for while one runs
joins it), a check that hangs fails at `health_check.timeout`, and the status moves by
these rules, evaluated after every check (a table is in docs/resilience.md):

- The plugin reports healthy or degraded: that is its status; failure and restart counts
  reset (from offline too: one good check brings a plugin back).
- The plugin (or its transport's supervisor, with `PluginUnavailableError`) reports offline:
  offline at once, with no action.
- A check fails (an error, the timeout, or the plugin reports unhealthy):
  - offline stays offline, with no action;
  - below `failure_limit` consecutive failures: degraded;
  - at `failure_limit`: unhealthy, and the monitor calls `transport.restart()` (the
    supervisor restarts a process, a remote plugin reconnects). Restarted: degraded with
    the failure count reset. The restart fails or outlives `restart_timeout`: offline, and
    every later check tries the restart again (the check interval is the backoff).
  - at `failure_limit` after `max_restarts` restarts in a row, or when the transport is not
    `restartable` (an in-process plugin): offline, no restart.
- Calls to an offline plugin fail fast with `PluginUnavailableError` (1602).
- The transport's supervisor announces a replacement process that passed its handshake and
  a health check (`supervisor_ready`): that health is the status, counts reset.

A plugin registered while it cannot be reached is *connecting* (`begin_connecting`): offline,
calls fail fast with `PluginConnectingError` (1603), and instead of checks the monitor tries
`transport.start()` after 0.5 s, then after waits doubling up to `health_check.interval`
(health checks disabled: up to 30 s), until it succeeds; then the plugin is healthy and the
checks begin.

"In a row" means without a successful check in between. With `health_check.enabled` false
there is no schedule and no action: a check asked for by `manager.health()` reports the
plugin's answer (or unhealthy on error or timeout) as is.

The schedule and the check in flight are tasks of the monitor's `TaskOwner`; `aclose()`
cancels both and waits for them, and a check asked for after that reports the plugin offline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec

from ._clock import Clock, system_clock
from ._config import HealthCheckConfig
from ._errors import PluginConnectingError, PluginError, PluginUnavailableError
from ._models import HealthStatus, PluginInfo, Status
from ._tasks import TaskOwner
from ._transports.base import BaseTransport
from ._types import LoggerLike

__all__ = ["HealthMonitor"]

_FIRST_CONNECT_RETRY = 0.5
_MAX_CONNECT_RETRY = 30.0  # when health checks are off (no interval to cap the wait at)


def _removed() -> HealthStatus:
    return HealthStatus(status=Status.OFFLINE, message="health check stopped: the plugin was removed")


class HealthMonitor:
    """Watches one plugin's health over its transport and recovers it when it fails.

    Args:
        name: The plugin's registered name.
        transport: Its transport (`health()` is checked, `restart()` recovers it).
        config: Interval, timeout and failure limit.
        clock: Where time comes from.
        logger: Where status changes are logged; defaults to `plugwire.health`.
        restart_timeout: Seconds a restart may take before it counts as failed (None: no limit).
        max_restarts: Restarts in a row (without a successful check between) before the
            plugin is declared offline.
        on_restart: Called with what the plugin said about itself after each restart (and
            after a connecting plugin connected).

    Attributes:
        last: The status after the latest check (what `list_plugins()` reports).
        offline: True while the plugin is offline (calls to it fail fast).
        failures: Consecutive failed checks.
        failed_checks: Failed checks since the monitor started (never reset).
        restarts: Restarts made so far.
        transitions: How many times each (old, new) status change happened.
    """

    def __init__(
        self,
        name: str,
        transport: BaseTransport,
        config: HealthCheckConfig,
        *,
        clock: Clock = system_clock,
        logger: LoggerLike | None = None,
        restart_timeout: float | None = None,
        max_restarts: int = 3,
        on_restart: Callable[[PluginInfo], None] | None = None,
    ) -> None:
        self.name = name
        self.transport = transport
        self.config = config
        self.clock = clock
        self.logger: LoggerLike = logger or logging.getLogger("plugwire.health")
        self.restart_timeout = restart_timeout or None
        self.max_restarts = max_restarts
        self.on_restart = on_restart
        self.last = HealthStatus(status=Status.HEALTHY, message="started; not checked yet")
        self.offline = False
        self.failures = 0
        self.restarts = 0
        self.checks = 0
        self.failed_checks = 0
        self.transitions: collections.Counter[tuple[Status, Status]] = collections.Counter()
        self._restarts_in_row = 0
        self._restart_failed = False
        #: The schedule and the check in flight (shared by everyone who asks meanwhile).
        self._tasks = TaskOwner(f"plugwire-health-{name}")
        self._current: asyncio.Task[HealthStatus] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        #: True while the plugin has never been reached (see `begin_connecting`).
        self.connecting = False
        self._connect_delay = _FIRST_CONNECT_RETRY
        self._connect_tries = 0
        #: Called once with the plugin's info when a connecting plugin has connected.
        self.on_connect: Callable[[PluginInfo], None] | None = None

    @property
    def status(self) -> Status:
        """The plugin's status now."""
        return self.last.status

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the periodic checks (if enabled, with a positive interval, or while
        connecting); idempotent."""
        if self._loop_task is None and (self.connecting or self._scheduled()):
            self._loop_task = self._tasks.start(self._run(), name="checks")

    def _scheduled(self) -> bool:
        return self.config.enabled and self.config.interval > 0

    def begin_connecting(self, error: PluginError) -> None:
        """The plugin's first start failed with `error`: keep trying it in the background
        (call before `start()`)."""
        self.connecting = True
        self._connect_delay = _FIRST_CONNECT_RETRY
        self._connect_tries = 1
        # Its first status, not a change: it was never healthy (the manager logs why it waits).
        self._set(Status.OFFLINE, self._connecting_message(error), 0.0, self._connect_meta(), first=True)

    def unavailable(self) -> PluginUnavailableError:
        """The error of a call to this plugin while it is offline or still connecting."""
        if self.connecting:
            return PluginConnectingError(
                f"plugin {self.name!r} is not connected yet: {self.last.message}",
                plugin=self.name,
                details={"next_attempt_in": self._connect_delay, "attempts": self._connect_tries},
            )
        return PluginUnavailableError(f"plugin {self.name!r} is offline: {self.last.message}", plugin=self.name)

    def supervisor_ready(self, reported: HealthStatus) -> None:
        """The transport's supervisor replaced the plugin's process and the new one passed
        its handshake and a health check: take that as a successful check."""
        if self.connecting:
            return
        self.failures = 0
        self._restarts_in_row = 0
        self._restart_failed = False
        self._set(reported.status, f"restarted by its supervisor: {reported.message}", 0.0, reported.metadata)

    async def aclose(self) -> None:
        """Stop the periodic checks and any check in flight, and wait until they ended; idempotent."""
        await self._tasks.aclose()

    async def _run(self) -> None:
        while True:
            if self.connecting:
                await self.clock.sleep(self._connect_delay)
            elif self._scheduled():
                await self.clock.sleep(self.config.interval)
            else:  # connected, and checks are off
                return
            # A bug in a check must not end the monitoring; the monitor's task owner logged it.
            with contextlib.suppress(Exception):
                await self.check()

    # ------------------------------------------------------------------- checks
    async def check(self) -> HealthStatus:
        """Check now, or join the check already running; then act on the result."""
        task = self._current
        if task is None:
            if self._tasks.closed:  # asked by `manager.health()` while the plugin was being removed
                return _removed()
            task = self._tasks.start(self._check_and_act(), name="check")
            self._current = task
            task.add_done_callback(self._check_done)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                # The shared check was stopped (the plugin is being removed), not our caller.
                return _removed()
            raise

    def _check_done(self, task: asyncio.Task[HealthStatus]) -> None:
        if self._current is task:
            self._current = None

    async def _probe(self) -> tuple[HealthStatus | None, str, float]:
        """Ask the plugin once: (its report or None, why it failed, seconds it took).

        A transport whose own supervisor has given up answers with `PluginUnavailableError`;
        that is reported as an `offline` status, which the rules below keep as it is.
        """
        started = self.clock.monotonic()
        limit = self.config.timeout or None
        scope = self.clock.timeout(limit)
        try:
            async with scope:
                reported = await self.transport.health()
        except TimeoutError:
            why = f"health check timed out after {limit:g}s" if scope.expired() else "health check timed out"
            return None, why, self.clock.monotonic() - started
        except PluginUnavailableError as exc:
            offline = HealthStatus(status=Status.OFFLINE, message=exc.message)
            return offline, "", self.clock.monotonic() - started
        except Exception as exc:
            return None, f"health check failed: {exc}", self.clock.monotonic() - started
        return reported, "", self.clock.monotonic() - started

    async def _check_and_act(self) -> HealthStatus:
        if self.connecting:
            return await self._connect()
        reported, why, elapsed = await self._probe()
        self.checks += 1
        if reported is not None and reported.status in (Status.HEALTHY, Status.DEGRADED):
            self.failures = 0
            self._restarts_in_row = 0
            return self._set(reported.status, reported.message, elapsed, reported.metadata)
        if reported is not None:
            why = f"plugin reports {reported.status.value}: {reported.message}"
        self.failures += 1
        self.failed_checks += 1
        if reported is not None and reported.status is Status.OFFLINE and self.config.enabled:
            return self._set(Status.OFFLINE, why, elapsed, reported.metadata)
        if not self.config.enabled:
            return self._set(Status.UNHEALTHY, why, elapsed)
        if self.offline:
            if self._restart_failed:  # the last restart failed: each check tries again
                return await self._restart(elapsed)
            return self._set(Status.OFFLINE, why, elapsed)
        if self.failures < self.config.failure_limit:
            return self._set(Status.DEGRADED, f"{why} ({self.failures} of {self.config.failure_limit})", elapsed)
        if not self.transport.restartable:
            return self._set(Status.OFFLINE, f"{why}; an in-process plugin cannot be restarted", elapsed)
        if self._restarts_in_row >= self.max_restarts:
            return self._set(Status.OFFLINE, f"{why}; gave up after {self.max_restarts} restarts in a row", elapsed)
        self._set(Status.UNHEALTHY, f"{why} ({self.failures} failed checks); restarting", elapsed)
        return await self._restart(elapsed)

    async def _connect(self) -> HealthStatus:
        """One try to reach a plugin that was never reached; backs off on failure."""
        started = self.clock.monotonic()
        self._connect_tries += 1
        scope = self.clock.timeout(self.restart_timeout)
        try:
            async with scope:
                info = await self.transport.start()
        except Exception as exc:
            elapsed = self.clock.monotonic() - started
            cap = self.config.interval if self._scheduled() else _MAX_CONNECT_RETRY
            self._connect_delay = min(max(cap, _FIRST_CONNECT_RETRY), self._connect_delay * 2)
            if isinstance(exc, TimeoutError) and scope.expired():
                why = f"no connection within {self.restart_timeout:g}s"
            else:
                why = exc.message if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            return self._set(Status.OFFLINE, self._connecting_message(why), elapsed, self._connect_meta())
        self.connecting = False
        self.failures = 0
        for hook in (self.on_restart, self.on_connect):
            if hook is not None:
                try:
                    hook(info)
                except Exception:  # a hook must never stop monitoring
                    logging.getLogger("plugwire.health").exception("a connect hook of %r raised", self.name)
        return self._set(Status.HEALTHY, "connected", self.clock.monotonic() - started)

    def _connecting_message(self, error: PluginError | str) -> str:
        why = error.message if isinstance(error, PluginError) else error
        return f"connecting (try {self._connect_tries + 1} in {self._connect_delay:.3g}s; last error: {why})"

    def _connect_meta(self) -> dict[str, str]:
        return {
            "connecting": "true",
            "next_attempt_in": f"{self._connect_delay:.3f}",
            "connect_attempts": str(self._connect_tries),
        }

    async def _restart(self, elapsed: float) -> HealthStatus:
        self._restarts_in_row += 1
        self.restarts += 1
        scope = self.clock.timeout(self.restart_timeout)
        try:
            async with scope:
                info = await self.transport.restart()
        except Exception as exc:
            if isinstance(exc, TimeoutError) and scope.expired():
                why = f"restart did not finish within {self.restart_timeout:g}s"
            else:
                why = f"restart failed: {exc}"
            self._restart_failed = True
            return self._set(Status.OFFLINE, why, elapsed)
        self._restart_failed = False
        self.failures = 0
        if self.on_restart is not None:
            try:
                self.on_restart(info)
            except Exception:  # a hook must never stop recovery
                logging.getLogger("plugwire.health").exception("on_restart hook of %r raised", self.name)
        return self._set(Status.DEGRADED, f"restarted (restart {self._restarts_in_row} in a row)", elapsed)

    def _set(
        self, status: Status, message: str, elapsed: float, extra: dict[str, str] | None = None, *, first: bool = False
    ) -> HealthStatus:
        metadata = dict(extra or {})
        metadata.update(consecutive_failures=str(self.failures), restarts=str(self.restarts), checks=str(self.checks))
        new = HealthStatus(
            status=status, message=message, last_check=time.time(), response_time=elapsed, metadata=metadata
        )
        old = self.last.status
        self.last = new
        self.offline = status is Status.OFFLINE
        if old is not status and not first:
            self.transitions[(old, status)] += 1
            self._log(old, status, message)
        return new

    def _log(self, old: Status, new: Status, message: str) -> None:
        level = "info" if new in (Status.HEALTHY, Status.DEGRADED) else "warning"
        try:
            getattr(self.logger, level)(f"plugin {self.name!r} health: {old.value} -> {new.value} ({message})")
        except Exception:  # a broken logger must never break monitoring
            logging.getLogger("plugwire.health").exception("the configured logger failed")

    def snapshot(self) -> HealthStatus:
        """The latest status (a copy, so callers cannot disturb the monitor's)."""
        return msgspec.structs.replace(self.last, metadata=dict(self.last.metadata))
