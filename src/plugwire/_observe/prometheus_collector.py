"""The series of the Prometheus exporter, and the collector that makes them from one
metrics snapshot per scrape, taken on the manager's event loop (docs/observability.md,
"Prometheus"). prometheus-client is imported only when families are built: `prometheus.py`
checks it is installed before a collector is made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._codes import ErrorCode
from .._models import Status
from .metrics import ManagerMetrics, MetricsSource, PluginMetrics

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["SERIES", "Series", "SnapshotCollector"]

_log = logging.getLogger("plugwire.observe")


@dataclasses.dataclass(frozen=True, slots=True)
class Series:
    """One metric family the exporter exposes (docs/observability.md, "Prometheus").

    Attributes:
        name: Its name after the prefix, as scraped (counters end in `_total`).
        kind: "counter", "gauge" or "histogram".
        readme: The README metric it is, or "" for one plugwire adds.
        labels: Its labels: every per-plugin series has `plugin` and `transport`.
        help: Its HELP text.
    """

    name: str
    kind: str
    readme: str
    labels: tuple[str, ...]
    help: str


_PLUGIN = ("plugin", "transport")

#: Every series, in the order a scrape lists them.
SERIES: tuple[Series, ...] = (
    Series("plugin_requests_total", "counter", "plugin_requests_total", _PLUGIN, "Calls made to the plugin."),
    Series(
        "plugin_requests_success_total",
        "counter",
        "plugin_requests_success",
        _PLUGIN,
        "Calls that returned a response.",
    ),
    Series(
        "plugin_requests_failure_total",
        "counter",
        "plugin_requests_failure",
        (*_PLUGIN, "code", "error"),
        "Calls that failed, by plugwire error code.",
    ),
    Series("plugin_requests_cancelled_total", "counter", "", _PLUGIN, "Calls their caller cancelled."),
    Series(
        "plugin_request_duration_seconds",
        "histogram",
        "plugin_request_duration",
        _PLUGIN,
        "Duration of finished calls (succeeded or failed), in seconds.",
    ),
    Series(
        "plugin_circuit_breaker_trips_total",
        "counter",
        "plugin_circuit_breaker_trips",
        _PLUGIN,
        "Times the plugin's circuit breaker opened.",
    ),
    Series(
        "plugin_health_check_failures_total",
        "counter",
        "plugin_health_check_failures",
        _PLUGIN,
        "Health checks that failed.",
    ),
    Series(
        "plugin_status",
        "gauge",
        "plugin_status",
        (*_PLUGIN, "status"),
        "1 for the plugin's current health status, 0 for the others.",
    ),
    Series(
        "plugin_response_time_seconds",
        "gauge",
        "plugin_response_time",
        _PLUGIN,
        "Mean duration of the plugin's finished calls, in seconds.",
    ),
    Series(
        "plugin_error_rate",
        "gauge",
        "plugin_error_rate",
        _PLUGIN,
        "Failed calls over finished calls since the plugin was registered (0 to 1).",
    ),
    Series("plugin_active_requests", "gauge", "plugin_active_requests", _PLUGIN, "Calls in flight."),
    Series("plugin_retries_total", "counter", "", _PLUGIN, "Attempts made after a call's first one."),
    Series("plugin_rate_limited_total", "counter", "", _PLUGIN, "Calls the rate limiter refused (1501)."),
    Series("plugin_circuit_breaker_rejections_total", "counter", "", _PLUGIN, "Calls the open breaker refused (1401)."),
    Series(
        "plugin_circuit_breaker_state",
        "gauge",
        "",
        (*_PLUGIN, "state"),
        "1 for the breaker's current state (closed, open, half-open, disabled), 0 for the others.",
    ),
    Series("plugin_health_checks_total", "counter", "", _PLUGIN, "Health checks made."),
    Series("plugin_health_check_latency_seconds", "gauge", "", _PLUGIN, "Seconds the last health check took."),
    Series(
        "plugin_restarts_total", "counter", "", _PLUGIN, "Plugin processes started again after a crash or failed check."
    ),
    Series("plugin_processes", "gauge", "", _PLUGIN, "Live plugin processes (0 for gRPC and in-process plugins)."),
    Series("config_reloads_total", "counter", "", (), "Configuration reloads run (reload_config(), hot reload)."),
    Series("config_reload_failures_total", "counter", "", (), "Configuration reloads refused whole (invalid config)."),
    Series(
        "metrics_snapshot_timestamp_seconds",
        "gauge",
        "",
        (),
        "When the snapshot this scrape shows was taken (seconds since the epoch); "
        "older than the scrape when the manager's loop could not be reached.",
    ),
)

_STATUSES = tuple(status.value for status in Status)
_BREAKER_STATES = ("closed", "open", "half-open", "disabled")

# The value of each one-number-per-plugin series.
_VALUES: dict[str, Callable[[PluginMetrics], float]] = {
    "plugin_requests_total": lambda p: p.requests_total,
    "plugin_requests_success_total": lambda p: p.requests_success,
    "plugin_requests_cancelled_total": lambda p: p.requests_cancelled,
    "plugin_circuit_breaker_trips_total": lambda p: p.circuit_breaker_trips,
    "plugin_health_check_failures_total": lambda p: p.health_check_failures,
    "plugin_response_time_seconds": lambda p: p.response_time,
    "plugin_error_rate": lambda p: p.error_rate,
    "plugin_active_requests": lambda p: p.active_requests,
    "plugin_retries_total": lambda p: p.retries,
    "plugin_rate_limited_total": lambda p: p.rate_limited,
    "plugin_circuit_breaker_rejections_total": lambda p: p.circuit_breaker_rejections,
    "plugin_health_checks_total": lambda p: p.health_checks,
    "plugin_health_check_latency_seconds": lambda p: p.health_check_latency,
    "plugin_restarts_total": lambda p: p.restarts,
    "plugin_processes": lambda p: p.processes,
}


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower()
    except ValueError:  # a code a plugin in another language made up
        return "unknown"


def _le(bound: float) -> str:
    """A bucket's `le` label as Prometheus clients write it: "0.25", "1.0", "+Inf"."""
    return "+Inf" if bound == math.inf else repr(float(bound))


class SnapshotCollector:
    """A prometheus-client collector (`collect`, `describe`) over one manager's snapshots.

    `collect` runs in whichever thread serves the scrape: prometheus-client's HTTP server
    threads, a WSGI server's, or the event loop of an ASGI app. The snapshot itself is always
    taken on the manager's loop, which owns the counters: directly when the scrape runs there,
    otherwise handed to it with `call_soon_threadsafe` and waited for, at most
    `snapshot_timeout`. When the loop is stopped, closed or too busy, the last snapshot is
    served again (its timestamp series says how old it is); a scrape never hangs.
    """

    def __init__(self, prefix: str, timeout: float) -> None:
        self.prefix = prefix
        self.timeout = timeout
        self._lock = threading.Lock()
        self._source: MetricsSource | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last: ManagerMetrics | None = None

    def attach(self, source: MetricsSource, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._source, self._loop = source, loop

    def detach(self) -> None:
        with self._lock:
            self._source = self._loop = None

    def snapshot(self) -> ManagerMetrics | None:
        """A fresh snapshot, or the last one when the manager's loop cannot give one."""
        with self._lock:
            source, loop = self._source, self._loop
        if source is None or loop is None:
            return self.last
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        try:
            if on_loop:
                taken = source()
            elif loop.is_closed() or not loop.is_running():
                return self.last
            else:
                taken = self._from_loop(source, loop)
        except concurrent.futures.TimeoutError:
            _log.warning(
                "Prometheus scrape: the manager's event loop did not take a snapshot within %gs; serving the last one",
                self.timeout,
            )
            return self.last
        except Exception:
            _log.exception("Prometheus scrape: the metrics snapshot failed; serving the last one")
            return self.last
        with self._lock:
            self.last = taken
        return taken

    def _from_loop(self, source: MetricsSource, loop: asyncio.AbstractEventLoop) -> ManagerMetrics:
        result: concurrent.futures.Future[ManagerMetrics] = concurrent.futures.Future()

        def take() -> None:
            if not result.set_running_or_notify_cancel():
                return  # the scrape gave up waiting
            try:
                result.set_result(source())
            except Exception as exc:
                result.set_exception(exc)

        try:
            loop.call_soon_threadsafe(take)
        except RuntimeError:  # closed since we looked
            raise concurrent.futures.TimeoutError from None
        try:
            return result.result(self.timeout)
        finally:
            result.cancel()

    def describe(self) -> Iterator[Metric]:
        """The families without samples: what the registry checks for clashing names (so
        registering never takes a snapshot)."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        """Every series, from one snapshot."""
        snapshot = self.snapshot()
        if snapshot is None:
            return
        yield from self._families(snapshot)

    def _families(self, snapshot: ManagerMetrics | None = None) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        plugins = list(snapshot.plugins.values()) if snapshot is not None else []
        for series in SERIES:
            name = self.prefix + series.name
            family: Any
            if series.kind == "counter":
                family = CounterMetricFamily(name, series.help, labels=series.labels)
            elif series.kind == "gauge":
                family = GaugeMetricFamily(name, series.help, labels=series.labels)
            else:
                family = HistogramMetricFamily(name, series.help, labels=series.labels)
            value = _VALUES.get(series.name)
            for plugin in plugins:
                labels = (plugin.name, plugin.transport)
                if value is not None:
                    family.add_metric(labels, value(plugin))
                elif series.name == "plugin_requests_failure_total":
                    for code, count in sorted(plugin.failures_by_code.items()):
                        family.add_metric((*labels, str(code), _error_name(code)), count)
                elif series.name == "plugin_request_duration_seconds":
                    duration = plugin.duration
                    buckets = [
                        ("+Inf" if bound == math.inf else repr(bound), count) for bound, count in duration.cumulative()
                    ]
                    family.add_metric(labels, buckets, duration.sum)
                elif series.name == "plugin_status":
                    for status in _STATUSES:
                        family.add_metric((*labels, status), 1.0 if plugin.status == status else 0.0)
                elif series.name == "plugin_circuit_breaker_state":
                    for state in _BREAKER_STATES:
                        family.add_metric((*labels, state), 1.0 if plugin.circuit_breaker_state == state else 0.0)
            if series.name == "metrics_snapshot_timestamp_seconds" and snapshot is not None:
                family.add_metric((), snapshot.taken_at)
            elif series.name == "config_reloads_total" and snapshot is not None:
                family.add_metric((), snapshot.config_reloads)
            elif series.name == "config_reload_failures_total" and snapshot is not None:
                family.add_metric((), snapshot.config_reload_failures)
            yield family
