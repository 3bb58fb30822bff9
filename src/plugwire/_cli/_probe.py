"""`plugwire health --metrics URL`: the plugins' health as a running host's Prometheus endpoint
reports it, for a probe beside a host started by `plugwire run` (nothing is started)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from .._codes import ErrorCode
from .._errors import MissingDependencyError, ObservabilityError, TransportError

__all__ = ["MetricsHealth", "PluginReading", "read_metrics_health"]

#: The series read (after the exporter's prefix, `plugwire_` by default): see
#: `plugwire._observe.prometheus_collector.SERIES`.
STATUS_SERIES = "plugin_status"
LATENCY_SERIES = "plugin_health_check_latency_seconds"
#: The count of checks made (the parser names a counter's family without `_total`): a latency
#: read before the first check is no reading.
CHECKS_SERIES = "plugin_health_checks"
SNAPSHOT_SERIES = "metrics_snapshot_timestamp_seconds"

#: The most of a scrape read: a host with thousands of plugins stays well under it.
MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PluginReading:
    """One plugin as the endpoint reports it.

    Attributes:
        name: Its name (the `plugin` label).
        transport: Its transport (the `transport` label).
        status: The status whose series is 1 ("healthy", "degraded", "unhealthy", "offline"),
            or "unknown" when none is.
        latency: Seconds its last health check took, when reported.
    """

    name: str
    transport: str
    status: str
    latency: float | None = None


@dataclass(frozen=True, slots=True)
class MetricsHealth:
    """What one scrape says.

    Attributes:
        url: Where it was read.
        plugins: Each plugin, by name order.
        snapshot_age: Seconds since the host took the snapshot the scrape shows (None when the
            endpoint does not say); large when the host's event loop no longer answers.
    """

    url: str
    plugins: tuple[PluginReading, ...]
    snapshot_age: float | None


def read_metrics_health(url: str, timeout: float) -> MetricsHealth:
    """Scrape `url` once and read each plugin's status from its `plugin_status` series.

    Raises:
        TransportError: 1301, the endpoint cannot be reached or does not answer 200.
        ObservabilityError: 2100, the answer is not Prometheus text holding plugwire's
            `plugin_status` series.
        MissingDependencyError: 1011, prometheus_client (the `prometheus` extra) is missing.
    """
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise MissingDependencyError(
            "health --metrics reads Prometheus text with prometheus_client: pip install 'plugwire[prometheus]'",
            code=ErrorCode.MISSING_DEPENDENCY,
        ) from None
    text = _fetch(url, timeout)
    statuses: dict[tuple[str, str], str] = {}
    latencies: dict[str, float] = {}
    checked: set[str] = set()
    snapshot: float | None = None
    seen = False
    try:
        for family in text_string_to_metric_families(text):
            if family.name.endswith(STATUS_SERIES) and family.type == "gauge":
                seen = True
                for sample in family.samples:
                    key = (sample.labels.get("plugin", ""), sample.labels.get("transport", ""))
                    if sample.value == 1:
                        statuses[key] = sample.labels.get("status", "unknown")
                    else:
                        statuses.setdefault(key, "unknown")
            elif family.name.endswith(LATENCY_SERIES):
                latencies.update((s.labels.get("plugin", ""), s.value) for s in family.samples)
            elif family.name.endswith(CHECKS_SERIES) and family.type == "counter":
                checked.update(s.labels.get("plugin", "") for s in family.samples if s.value > 0)
            elif family.name.endswith(SNAPSHOT_SERIES) and family.samples:
                snapshot = family.samples[0].value
    except ValueError as exc:
        raise ObservabilityError(
            f"{url}: not Prometheus text: {exc}", code=ErrorCode.OBSERVABILITY, details={"url": url}
        ) from None
    if not seen:
        raise ObservabilityError(
            f"{url}: no {STATUS_SERIES} series: is this a plugwire host's metrics endpoint?",
            code=ErrorCode.OBSERVABILITY,
            details={"url": url},
        )
    plugins = tuple(
        PluginReading(name, transport, status, latencies.get(name) if name in checked else None)
        for (name, transport), status in sorted(statuses.items())
    )
    age = None if snapshot is None else max(0.0, time.time() - snapshot)
    return MetricsHealth(url, plugins, age)


def _fetch(url: str, timeout: float) -> str:
    if not url.startswith(("http://", "https://")):
        raise TransportError(
            f"{url!r}: expected an http:// or https:// URL of a metrics endpoint", code=ErrorCode.CONNECT_FAILED
        )
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})  # noqa: S310 - checked: http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            body: bytes = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response (and its socket)
        raise TransportError(f"{url}: HTTP {exc.code} {exc.reason}", code=ErrorCode.CONNECT_FAILED) from None
    except urllib.error.URLError as exc:
        raise TransportError(f"{url}: cannot reach it: {exc.reason}", code=ErrorCode.CONNECT_FAILED) from None
    except (TimeoutError, OSError) as exc:
        raise TransportError(f"{url}: cannot reach it: {exc}", code=ErrorCode.CONNECT_FAILED) from None
    if len(body) > MAX_BYTES:
        raise ObservabilityError(f"{url}: the answer is larger than {MAX_BYTES} bytes", code=ErrorCode.OBSERVABILITY)
    return body.decode("utf-8", "replace")
