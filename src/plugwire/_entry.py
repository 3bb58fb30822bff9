"""One registered plugin as the manager keeps it, and the check of what a call carries to it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from ._clock import Clock
from ._config import PluginConfig
from ._errors import ErrorCode, PluginError, ProcessError, RequestValidationError, TransportError
from ._health import HealthMonitor
from ._models import ExecutionContext, HealthStatus, PluginInfo, Transport
from ._observe.metrics import CallCounters, PluginMetrics
from ._policies import BreakerListener, CallPipeline, CircuitBreaker, Policy, build_call_pipeline, compose, make_breaker
from ._transports.base import BaseTransport
from ._transports.subprocess import SubprocessTransport
from ._types import LoggerLike

__all__ = ["PluginEntry", "check_context", "connects_later"]

# Start failures that say the plugin is not there yet (rather than misconfigured).
_NOT_THERE_YET = frozenset({ErrorCode.PROCESS_EXITED_DURING_START, ErrorCode.PROCESS_START_TIMEOUT})


class PluginEntry:
    """One registered plugin: its transport, its pipeline, its in-flight count and, with
    metrics on, its call counters."""

    __slots__ = (
        "attempt_timeout",
        "breaker",
        "config",
        "counters",
        "generation",
        "handler",
        "idle_waiters",
        "inflight",
        "info",
        "monitor",
        "pipeline",
        "transport",
    )

    def __init__(
        self, config: PluginConfig, transport: BaseTransport, info: PluginInfo, monitor: HealthMonitor
    ) -> None:
        self.config = config
        # What an attempt may take when the call's context says nothing (0 in config: no limit).
        self.attempt_timeout = config.connection.request_timeout or None
        self.transport = transport
        self.info = info
        self.monitor = monitor
        self.breaker: CircuitBreaker | None = None
        self.pipeline: CallPipeline | None = None
        self.handler: Any = None
        #: The call counters (None while metrics are off): `execute` adds each call's outcome
        #: and duration, the pipeline its retries.
        self.counters: CallCounters | None = None
        self.inflight = 0
        #: Which start of this plugin this is: 1, then one more per `replace()` (docs/lifecycle.md).
        self.generation = 1
        # Futures of those waiting for `inflight` to reach 0 (`wait_idle`); a call only looks
        # at this list when it ends the last call in flight, so calls pay for no event.
        self.idle_waiters: list[asyncio.Future[None]] = []

    async def wait_idle(self) -> None:
        """Return once no call is in flight."""
        if not self.inflight:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.idle_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self.idle_waiters:
                self.idle_waiters.remove(waiter)

    def wake_idle(self) -> None:
        """The last call in flight ended: wake everyone in `wait_idle`."""
        waiters, self.idle_waiters = self.idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def count_calls(self, counters: CallCounters) -> None:
        """Turn metrics on for this plugin: from now on its calls are counted in `counters`."""
        self.counters = counters
        if self.pipeline is not None:
            self.pipeline.counters = counters

    def metrics(self, draining: int = 0) -> PluginMetrics:
        """A snapshot of this plugin's counters (metrics must be on: `counters` set);
        `draining`: calls still in flight on its older generations (`replace`), which share
        the counters and count as active until they end."""
        counters = self.counters
        assert counters is not None, "metrics are off for this plugin"
        monitor = self.monitor
        breaker = self.breaker
        by_code = dict(counters.failures_by_code)
        succeeded = counters.successes
        failed = counters.failures
        ended = succeeded + failed
        duration = counters.histogram()
        return PluginMetrics(
            name=self.config.name,
            transport=self.config.transport.value,
            status=monitor.last.status,
            requests_total=ended + counters.cancelled + self.inflight + draining,
            requests_success=succeeded,
            requests_failure=failed,
            requests_cancelled=counters.cancelled,
            active_requests=self.inflight + draining,
            failures_by_code=by_code,
            retries=counters.retries,
            rate_limited=by_code.get(ErrorCode.RATE_LIMITED, 0),
            circuit_breaker_rejections=by_code.get(ErrorCode.CIRCUIT_OPEN, 0),
            circuit_breaker_trips=breaker.trips if breaker is not None else 0,
            circuit_breaker_state=breaker.state.value if breaker is not None else "disabled",
            health_checks=monitor.checks,
            health_check_failures=monitor.failed_checks,
            health_check_latency=monitor.last.response_time,
            restarts=monitor.restarts + self.transport.crash_restarts(),
            processes=self.transport.processes(),
            duration=duration,
            response_time=duration.mean,
            error_rate=failed / ended if ended else 0.0,
        )

    def _restarted(self, info: PluginInfo) -> None:
        self.info = info

    def _lifecycle(self, event: str, fields: Mapping[str, Any]) -> None:
        """The supervisor's events: a replacement that passed its handshake and a health
        check ends an open breaker's wait and an offline status at once."""
        if event != "ready":
            return
        if self.breaker is not None:
            self.breaker.recovered(f"process {fields.get('pid')} replaced a crashed one and passed its health check")
        status = fields.get("status")
        if isinstance(status, HealthStatus):
            self.monitor.supervisor_ready(status)

    @classmethod
    def assemble(
        cls,
        config: PluginConfig,
        transport: BaseTransport,
        info: PluginInfo,
        *,
        clock: Clock,
        logger: LoggerLike,
        policies: Sequence[Policy],
        breaker_listeners: Sequence[BreakerListener],
        counters: CallCounters | None = None,
    ) -> PluginEntry:
        """The entry of a started `transport`: its health monitor, breaker and pipeline (the
        user's `policies` outermost, then the ones `config` turns on); `counters` when
        metrics are on."""
        monitor = HealthMonitor(
            config.name,
            transport,
            config.health_check,
            clock=clock,
            logger=logger,
            restart_timeout=config.connection.connection_timeout,
        )
        entry = cls(config, transport, info, monitor)
        monitor.on_restart = entry._restarted
        if isinstance(transport, SubprocessTransport):
            transport.listeners.append(entry._lifecycle)
        entry.breaker = make_breaker(config, clock=clock, listeners=breaker_listeners, logger=logger)
        entry.counters = counters
        entry.pipeline = build_call_pipeline(
            config,
            transport.call,
            clock=clock,
            breaker=entry.breaker,
            transport_timeouts=transport.enforces_timeout,
            counters=counters,
        )
        # A bound method when there are no user policies: what `execute` calls on every call.
        entry.handler = compose(policies, entry.pipeline.run)
        return entry


def connects_later(config: PluginConfig, error: PluginError) -> bool:
    """Whether a plugin whose first start failed with `error` is registered anyway, as
    connecting (`connection.connect_in_background`; by default for gRPC plugins only).

    Only failures that say the plugin is not reachable yet qualify: a retryable transport or
    process error, a plugin that exited or stayed silent during its start. A refusal
    (credentials, TLS files, a missing executable, security) fails the registration.
    """
    wanted = config.connection.connect_in_background
    if wanted is None:
        wanted = config.transport in (Transport.GRPC, Transport.GRPC_TLS)
    if not wanted or not isinstance(error, (TransportError, ProcessError)):
        return False
    return error.retryable or error.code in _NOT_THERE_YET


def check_context(context: ExecutionContext, plugin: str) -> None:
    """Headers and metadata travel to the plugin as strings: refuse anything else up front."""
    for field in ("headers", "metadata"):
        for key, value in getattr(context, field).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise RequestValidationError(
                    f"ExecutionContext.{field}[{key!r}]: keys and values must be str, got {type(value).__name__}",
                    plugin=plugin,
                    details={"field": f"context.{field}"},
                )
