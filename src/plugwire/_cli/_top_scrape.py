"""`plugwire top --metrics URL`: read a running host's Prometheus endpoint back into metrics.

The endpoint serves the series of `_observe/prometheus_collector.py` (`SERIES`); this module
parses them (prometheus-client's text parser, the `prometheus` extra) into one
`PluginMetrics` per plugin, so that a scrape and a host's own `get_metrics()` feed the same
frames.
"""

from __future__ import annotations

import importlib
import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .._errors import MissingDependencyError
from .._models import Status
from .._observe.metrics import Histogram, PluginMetrics
from .._observe.prometheus import PROMETHEUS_EXTRA_HINT
from ._top_model import Snapshot

__all__ = ["ScrapeError", "parse_exposition", "scrape"]

# The series every plugin has; its name after the prefix tells where the prefix ends.
_ANCHOR = "plugin_requests_total"
# Series whose one value per plugin is a PluginMetrics field: name after the prefix -> field.
_FIELDS = {
    "plugin_requests_total": "requests_total",
    "plugin_requests_success_total": "requests_success",
    "plugin_requests_cancelled_total": "requests_cancelled",
    "plugin_active_requests": "active_requests",
    "plugin_retries_total": "retries",
    "plugin_rate_limited_total": "rate_limited",
    "plugin_circuit_breaker_rejections_total": "circuit_breaker_rejections",
    "plugin_circuit_breaker_trips_total": "circuit_breaker_trips",
    "plugin_health_checks_total": "health_checks",
    "plugin_health_check_failures_total": "health_check_failures",
    "plugin_restarts_total": "restarts",
    "plugin_processes": "processes",
}
_FLOAT_FIELDS = {
    "plugin_health_check_latency_seconds": "health_check_latency",
    "plugin_response_time_seconds": "response_time",
    "plugin_error_rate": "error_rate",
}


class ScrapeError(Exception):
    """The endpoint could not be read, or what it serves is not a plugwire host's series."""


def _parser() -> Any:
    try:
        return importlib.import_module("prometheus_client.parser")
    except ImportError as exc:
        raise MissingDependencyError(
            f"top --metrics reads Prometheus's text format with the prometheus extra: {PROMETHEUS_EXTRA_HINT} ({exc})",
            details={"extra": "prometheus"},
        ) from exc


def scrape(url: str, timeout: float) -> Snapshot:
    """GET `url` and parse it (blocking: run it in a thread).

    Raises:
        ScrapeError: Unreachable, an HTTP error, or not a plugwire host's series.
        MissingDependencyError: prometheus-client is not installed (1011).
    """
    parser = _parser()
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})  # noqa: S310 - the user's URL
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            text = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response's socket
        raise ScrapeError(f"cannot read metrics from {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        raise ScrapeError(f"cannot read metrics from {url}: {reason}") from None
    except (OSError, ValueError) as exc:  # a timeout while reading, a URL urllib cannot take
        raise ScrapeError(f"cannot read metrics from {url}: {exc}") from None
    return parse_exposition(text, source=url, parser=parser)


def parse_exposition(text: str, *, source: str = "the endpoint", parser: Any = None) -> Snapshot:
    """Each plugin's metrics from a scrape's text (Prometheus text format).

    Raises:
        ScrapeError: The text is not Prometheus's format, or holds no plugwire series.
        MissingDependencyError: prometheus-client is not installed (1011).
    """
    parser = parser or _parser()
    try:
        samples = [sample for family in parser.text_string_to_metric_families(text) for sample in family.samples]
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError(f"{source} does not serve Prometheus's text format: {exc}") from None
    prefix = _prefix(samples)
    if prefix is None:
        raise ScrapeError(f"{source} serves no plugwire series (no *{_ANCHOR}): is it a plugwire host's /metrics?")
    taken_at = time.time()
    plugins: dict[str, dict[str, Any]] = defaultdict(dict)
    for sample in samples:
        if not sample.name.startswith(prefix):
            continue
        name, labels, value = sample.name[len(prefix) :], sample.labels, sample.value
        if name == "metrics_snapshot_timestamp_seconds":
            taken_at = value
        plugin = labels.get("plugin")
        if plugin is None:
            continue
        fields = plugins[plugin]
        fields.setdefault("transport", labels.get("transport", ""))
        _add(fields, name, labels, value)
    return Snapshot(taken_at=taken_at, plugins={name: _metrics(name, fields) for name, fields in plugins.items()})


def _prefix(samples: Iterable[Any]) -> str | None:
    for sample in samples:
        if sample.name.endswith(_ANCHOR) and "plugin" in sample.labels:
            return str(sample.name[: -len(_ANCHOR)])
    return None


def _add(fields: dict[str, Any], name: str, labels: dict[str, str], value: float) -> None:
    if name in _FIELDS:
        fields[_FIELDS[name]] = int(value)
    elif name in _FLOAT_FIELDS:
        fields[_FLOAT_FIELDS[name]] = value
    elif name == "plugin_requests_failure_total" and labels.get("code", "").isdigit():
        fields.setdefault("failures_by_code", {})[int(labels["code"])] = int(value)
    elif name == "plugin_status" and value == 1:
        fields["status"] = labels.get("status", "")
    elif name == "plugin_circuit_breaker_state" and value == 1:
        fields["circuit_breaker_state"] = labels.get("state", "")
    elif name == "plugin_request_duration_seconds_bucket":
        bound = math.inf if labels.get("le") == "+Inf" else float(labels.get("le", "nan"))
        fields.setdefault("buckets", []).append((bound, int(value)))
    elif name == "plugin_request_duration_seconds_sum":
        fields["duration_sum"] = value


def _histogram(cumulative: list[tuple[float, int]], total: float) -> Histogram:
    """From Prometheus's cumulative `le` buckets back to per-bucket counts."""
    cumulative = sorted(b for b in cumulative if not math.isnan(b[0]))
    bounds = tuple(bound for bound, _ in cumulative if bound != math.inf)
    counts, below = [], 0
    for _, at_or_below in cumulative:
        counts.append(max(at_or_below - below, 0))
        below = max(at_or_below, below)
    if not cumulative or cumulative[-1][0] != math.inf:
        counts.append(0)  # no +Inf bucket was served: an empty one
    return Histogram(bounds=bounds, counts=tuple(counts), sum=total, count=sum(counts))


def _metrics(name: str, fields: dict[str, Any]) -> PluginMetrics:
    duration = _histogram(fields.get("buckets", []), fields.get("duration_sum", 0.0))
    by_code: dict[int, int] = fields.get("failures_by_code", {})
    status = fields.get("status", "")
    return PluginMetrics(
        name=name,
        transport=fields.get("transport", ""),
        status=Status(status) if status in set(Status) else Status.OFFLINE,
        requests_total=fields.get("requests_total", 0),
        requests_success=fields.get("requests_success", 0),
        requests_failure=sum(by_code.values()),
        requests_cancelled=fields.get("requests_cancelled", 0),
        active_requests=fields.get("active_requests", 0),
        failures_by_code=by_code,
        retries=fields.get("retries", 0),
        rate_limited=fields.get("rate_limited", 0),
        circuit_breaker_rejections=fields.get("circuit_breaker_rejections", 0),
        circuit_breaker_trips=fields.get("circuit_breaker_trips", 0),
        circuit_breaker_state=fields.get("circuit_breaker_state", "disabled"),
        health_checks=fields.get("health_checks", 0),
        health_check_failures=fields.get("health_check_failures", 0),
        health_check_latency=fields.get("health_check_latency", 0.0),
        restarts=fields.get("restarts", 0),
        processes=fields.get("processes", 0),
        duration=duration,
        response_time=fields.get("response_time", 0.0),
        error_rate=fields.get("error_rate", 0.0),
    )
