"""The OTLP exporter's mapping: one `ManagerMetrics` snapshot as the OpenTelemetry SDK's
`MetricsData` (the names, types, units and attributes of docs/observability.md's table).

A pure function of the snapshot: no I/O, no state; `otlp.OTLPExporter` calls it on its worker
thread and hands the result to the SDK's OTLP exporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._models import Status
from .metrics import ManagerMetrics, PluginMetrics

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData

__all__ = ["METRICS", "metrics_data"]

_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    # (metric name, PluginMetrics field, unit, description)
    ("plugin_requests_total", "requests_total", "{request}", "Calls made: finished, failed, cancelled or running"),
    ("plugin_requests_success", "requests_success", "{request}", "Calls that returned a valid response"),
    ("plugin_requests_failure", "requests_failure", "{request}", "Calls that raised a PluginError"),
    ("plugin_requests_cancelled", "requests_cancelled", "{request}", "Calls their caller cancelled"),
    ("plugin_retries", "retries", "{attempt}", "Attempts made after a call's first one"),
    ("plugin_rate_limited", "rate_limited", "{request}", "Calls the rate limiter refused (1501)"),
    ("plugin_circuit_breaker_rejections", "circuit_breaker_rejections", "{request}", "Calls the open breaker refused"),
    ("plugin_circuit_breaker_trips", "circuit_breaker_trips", "{trip}", "Times the circuit breaker opened"),
    ("plugin_health_checks", "health_checks", "{check}", "Health checks made"),
    ("plugin_health_check_failures", "health_check_failures", "{check}", "Health checks that failed"),
    ("plugin_restarts", "restarts", "{restart}", "Plugin processes started again"),
)
_GAUGES: tuple[tuple[str, str, str, str], ...] = (
    ("plugin_active_requests", "active_requests", "{request}", "Calls in flight"),
    ("plugin_response_time", "response_time", "s", "Mean duration of the plugin's finished calls"),
    ("plugin_error_rate", "error_rate", "1", "Failed calls / ended calls"),
    ("plugin_health_check_latency", "health_check_latency", "s", "Seconds the last health check took"),
    ("plugin_processes", "processes", "{process}", "Live plugin processes"),
)
_BREAKER_STATES = ("closed", "open", "half-open")

#: Every metric this exporter sends: (name, OTLP type, unit, attributes). The README's names;
#: each per-plugin point has the `plugin` and `transport` attributes; the manager's own counts
#: (`config_reloads`, `config_reload_failures`) have none.
METRICS: tuple[tuple[str, str, str, str], ...] = (
    *((name, "Sum", unit, "plugin, transport") for name, _, unit, _ in _COUNTERS),
    ("plugin_requests_failure_by_code", "Sum", "{request}", "plugin, transport, code"),
    ("plugin_request_duration", "Histogram", "s", "plugin, transport"),
    *((name, "Gauge", unit, "plugin, transport") for name, _, unit, _ in _GAUGES),
    ("plugin_status", "Gauge", "1", "plugin, transport, status"),
    ("plugin_circuit_breaker_state", "Gauge", "1", "plugin, transport, state"),
    ("config_reloads", "Sum", "{reload}", "(none)"),
    ("config_reload_failures", "Sum", "{reload}", "(none)"),
)


def metrics_data(snapshot: ManagerMetrics, resource: Any, scope: Any, start_ns: int) -> MetricsData:
    """`snapshot` as the SDK's `MetricsData`: one point per plugin (and per code, status,
    breaker state where those are attributes), cumulative since `start_ns`.

    `plugin_status` and `plugin_circuit_breaker_state` are state sets: one point per possible
    value, 1 for the current one and 0 for the others (no breaker: no points). A metric with
    no points at all is not sent.
    """
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        Histogram,
        HistogramDataPoint,
        Metric,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.metrics.export import MetricsData as SDKMetricsData

    now = int(snapshot.taken_at * 1e9)
    plugins = sorted(snapshot.plugins.values(), key=lambda p: p.name)
    cumulative = AggregationTemporality.CUMULATIVE

    def point(plugin: PluginMetrics, value: float, **extra: str | int) -> NumberDataPoint:
        attributes = {"plugin": plugin.name, "transport": plugin.transport, **extra}
        return NumberDataPoint(attributes=attributes, start_time_unix_nano=start_ns, time_unix_nano=now, value=value)

    metrics: list[Metric] = []
    for name, attr, unit, description in _COUNTERS:
        points = [point(p, getattr(p, attr)) for p in plugins]
        metrics.append(Metric(name, description, unit, Sum(points, cumulative, is_monotonic=True)))
    by_code = [point(p, n, code=int(code)) for p in plugins for code, n in sorted(p.failures_by_code.items())]
    metrics.append(
        Metric(
            "plugin_requests_failure_by_code",
            "Failed calls per error code",
            "{request}",
            Sum(by_code, cumulative, is_monotonic=True),
        )
    )
    histograms = [
        HistogramDataPoint(
            attributes={"plugin": p.name, "transport": p.transport},
            start_time_unix_nano=start_ns,
            time_unix_nano=now,
            count=p.duration.count,
            sum=p.duration.sum,
            bucket_counts=list(p.duration.counts),
            explicit_bounds=list(p.duration.bounds),
            # No min/max are kept on the call path; None leaves the optional fields unset.
            min=None,  # type: ignore[arg-type]
            max=None,  # type: ignore[arg-type]
        )
        for p in plugins
    ]
    metrics.append(
        Metric("plugin_request_duration", "Latency of finished calls", "s", Histogram(histograms, cumulative))
    )
    for name, attr, unit, description in _GAUGES:
        metrics.append(Metric(name, description, unit, Gauge([point(p, getattr(p, attr)) for p in plugins])))
    status = [point(p, int(p.status == s), status=s.value) for p in plugins for s in Status]
    metrics.append(Metric("plugin_status", "1 for the plugin's current health status", "1", Gauge(status)))
    states = [
        point(p, int(p.circuit_breaker_state == s), state=s)
        for p in plugins
        if p.circuit_breaker_state in _BREAKER_STATES
        for s in _BREAKER_STATES
    ]
    metrics.append(Metric("plugin_circuit_breaker_state", "1 for the breaker's current state", "1", Gauge(states)))
    for name, value, description in (
        ("config_reloads", snapshot.config_reloads, "Configuration reloads run"),
        ("config_reload_failures", snapshot.config_reload_failures, "Configuration reloads refused whole"),
    ):
        manager_point = NumberDataPoint(attributes={}, start_time_unix_nano=start_ns, time_unix_nano=now, value=value)
        metrics.append(Metric(name, description, "{reload}", Sum([manager_point], cumulative, is_monotonic=True)))
    # A metric without points (no plugin, no failure yet, no breaker) is left out: OTLP has
    # no empty metric, and a collector may refuse one.
    metrics = [metric for metric in metrics if metric.data.data_points]
    return SDKMetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, metrics, "")], "")])
