"""Call counters on the call path, and the frozen snapshots operators and exporters read.

The call path touches only `CallCounters`: integer and float attributes and one list of
bucket counts, added to without a lock (every call of a manager runs on its event loop) and
without allocating. `ManagerMetrics` and `PluginMetrics` are built from them when someone asks
(`manager.get_metrics()`, a Prometheus scrape, an OTLP export), so reading metrics costs the
calls nothing, and what one reading returns never changes under its reader.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

import msgspec

from .._models import Status

__all__ = [
    "DEFAULT_BUCKETS",
    "CallCounters",
    "Histogram",
    "ManagerMetrics",
    "MetricsExporter",
    "MetricsSource",
    "PluginMetrics",
]

#: Upper bounds (seconds) of the latency histogram's buckets: 250 µs to 10 s, the range a
#: plugin call spans from an in-process hop to a slow remote service. A last bucket, +Inf,
#: holds the rest.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Histogram(msgspec.Struct, frozen=True, kw_only=True):
    """A latency histogram at one moment.

    Attributes:
        bounds: Upper bounds of the buckets, in seconds, increasing; a last bucket (+Inf) follows.
        counts: Observations per bucket (not cumulative): `len(bounds) + 1` numbers, where
            `counts[i]` counts durations `d` with `bounds[i-1] < d <= bounds[i]`.
        sum: The sum of every observed duration, in seconds.
        count: How many durations were observed (`sum(counts)`).
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float = 0.0
    count: int = 0

    @property
    def mean(self) -> float:
        """The mean duration in seconds (0.0 before any observation)."""
        return self.sum / self.count if self.count else 0.0

    def cumulative(self) -> list[tuple[float, int]]:
        """`(upper bound, observations at or below it)` per bucket, +Inf last: the `le`
        series of a Prometheus histogram."""
        total = 0
        result = []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += count
            result.append((bound, total))
        return result

    def quantile(self, q: float) -> float:
        """An estimate of the `q`-quantile (0 ≤ q ≤ 1) in seconds, interpolated linearly
        inside its bucket as Prometheus's `histogram_quantile` does; a quantile in the +Inf
        bucket is reported as the largest finite bound. 0.0 before any observation.

        Raises:
            ValueError: `q` is outside [0, 1].
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {q!r}")
        if not self.count:
            return 0.0
        rank = q * self.count
        below = 0
        lower = 0.0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            if count and below + count >= rank:
                return lower + (bound - lower) * ((rank - below) / count)
            below += count
            lower = bound
        return self.bounds[-1] if self.bounds else 0.0

    @classmethod
    def merge(cls, bounds: tuple[float, ...], histograms: Iterable[Histogram]) -> Histogram:
        """One histogram holding every observation of `histograms` (all with `bounds`)."""
        histograms = list(histograms)
        if not histograms:
            return cls(bounds=bounds, counts=(0,) * (len(bounds) + 1))
        # Bucket by bucket, summed in C (`zip` of the columns): 100 plugins' histograms merge
        # in a few microseconds, which keeps `get_metrics()` cheap.
        counts = tuple(map(sum, zip(*(h.counts for h in histograms), strict=True)))
        total = math.fsum(h.sum for h in histograms)
        observed = sum(h.count for h in histograms)
        return cls(bounds=bounds, counts=counts, sum=total, count=observed)


class PluginMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """What one plugin did, as of `ManagerMetrics.taken_at`.

    The README's plugin-level metrics are `status`, `response_time`, `error_rate` and
    `active_requests`; the rest is what an operator needs to find out why.

    Attributes:
        name: The plugin's registered name.
        transport: Its transport ("executable", "grpc", "grpc-tls", "in-process", "go-plugin").
        status: Its health as its monitor last saw it (no new check is made).
        requests_total: Calls made to it: finished, failed, cancelled or still running.
        requests_success: Calls that returned a valid response.
        requests_failure: Calls that raised a `PluginError` (including those the breaker or
            the rate limiter refused, and a plugin that was offline).
        requests_cancelled: Calls their caller cancelled before they ended.
        active_requests: Calls in flight now.
        failures_by_code: Failed calls per error code (e.g. `{1204: 3, 1401: 10}`).
        retries: Attempts made after a call's first one.
        rate_limited: Calls the rate limiter refused (code 1501).
        circuit_breaker_rejections: Calls the open breaker refused (code 1401).
        circuit_breaker_trips: How often its breaker opened.
        circuit_breaker_state: "closed", "open" or "half-open"; "disabled" without a breaker.
        health_checks: Health checks made.
        health_check_failures: Health checks that failed (timed out, raised, or reported
            unhealthy or offline).
        health_check_latency: Seconds the last health check took.
        restarts: Processes started again after a crash or a failed health check.
        processes: Live plugin processes now (0 for gRPC and in-process plugins).
        duration: The latency histogram of its finished calls.
        response_time: Their mean duration, in seconds (`duration.mean`).
        error_rate: `requests_failure / (requests_success + requests_failure)`; 0.0 before
            any call ended.
    """

    name: str
    transport: str
    status: Status
    requests_total: int
    requests_success: int
    requests_failure: int
    requests_cancelled: int
    active_requests: int
    failures_by_code: dict[int, int]
    retries: int
    rate_limited: int
    circuit_breaker_rejections: int
    circuit_breaker_trips: int
    circuit_breaker_state: str
    health_checks: int
    health_check_failures: int
    health_check_latency: float
    restarts: int
    processes: int
    duration: Histogram
    response_time: float
    error_rate: float


class ManagerMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Every plugin's metrics at one moment, and the README's manager-level totals.

    Attributes:
        taken_at: When the snapshot was taken (seconds since the epoch).
        requests_total: `plugin_requests_total`, summed over plugins.
        requests_success: `plugin_requests_success`.
        requests_failure: `plugin_requests_failure`.
        request_duration: `plugin_request_duration`, every plugin's histogram merged.
        circuit_breaker_trips: `plugin_circuit_breaker_trips`.
        health_check_failures: `plugin_health_check_failures`.
        active_requests: Calls in flight now, over all plugins.
        plugins: Each plugin's `PluginMetrics` by name.
        config_reloads: Configuration reloads run (`reload_config()`, the hot reload's);
            reloads asked for while one ran and coalesced into the next count once.
        config_reload_failures: Those of them refused whole (an invalid config: nothing
            changed).
    """

    taken_at: float
    requests_total: int
    requests_success: int
    requests_failure: int
    request_duration: Histogram
    circuit_breaker_trips: int
    health_check_failures: int
    active_requests: int
    plugins: dict[str, PluginMetrics]
    config_reloads: int = 0
    config_reload_failures: int = 0

    @classmethod
    def of(
        cls,
        bounds: tuple[float, ...],
        plugins: Mapping[str, PluginMetrics],
        *,
        config_reloads: int = 0,
        config_reload_failures: int = 0,
    ) -> ManagerMetrics:
        """The totals of `plugins` (each with a histogram on `bounds`), and the manager's own counts."""
        values = plugins.values()
        return cls(
            taken_at=time.time(),
            requests_total=sum(p.requests_total for p in values),
            requests_success=sum(p.requests_success for p in values),
            requests_failure=sum(p.requests_failure for p in values),
            request_duration=Histogram.merge(bounds, (p.duration for p in values)),
            circuit_breaker_trips=sum(p.circuit_breaker_trips for p in values),
            health_check_failures=sum(p.health_check_failures for p in values),
            active_requests=sum(p.active_requests for p in values),
            plugins=dict(plugins),
            config_reloads=config_reloads,
            config_reload_failures=config_reload_failures,
        )


class CallCounters:
    """The counters of one plugin's calls, updated on the call path.

    Plain attributes, no lock: every update runs on the manager's event loop thread.
    `succeeded`/`failed` put the call's duration in its bucket (`bisect` over the bounds)
    and add it to the sum; nothing is allocated per call except a new key of
    `failures_by_code` the first time a code is seen.
    """

    __slots__ = ("bounds", "buckets", "cancelled", "failures", "failures_by_code", "retries", "seconds", "successes")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.seconds = 0.0
        self.successes = 0
        self.failures = 0
        self.cancelled = 0
        self.retries = 0
        self.failures_by_code: dict[int, int] = {}

    def succeeded(self, seconds: float) -> None:
        """A call returned a valid response after `seconds` (`execute` inlines this)."""
        self.successes += 1
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.seconds += seconds

    def failed(self, code: int, seconds: float) -> None:
        """A call failed with error `code` after `seconds`."""
        self.failures += 1
        by_code = self.failures_by_code
        by_code[code] = by_code.get(code, 0) + 1
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.seconds += seconds

    def histogram(self) -> Histogram:
        buckets = tuple(self.buckets)
        return Histogram(bounds=self.bounds, counts=buckets, sum=self.seconds, count=sum(buckets))


#: What an exporter reads: a fresh `ManagerMetrics` each time it is called.
MetricsSource = Callable[[], ManagerMetrics]


@runtime_checkable
class MetricsExporter(Protocol):
    """What `manager.register_metrics_exporter()` accepts: the README's custom exporters.

    `start` is called once, at registration, with the manager's snapshot function; an
    exporter calls it whenever it needs numbers (a scrape, a timer) and never from the call
    path. `aclose` is called once when the manager shuts down (or the exporter is
    unregistered): it flushes what is pending, bounded in time, and releases ports and tasks.
    A failure of `start` fails the registration; a failure later is the exporter's to log.
    """

    def start(self, source: MetricsSource) -> Awaitable[None]:
        """Begin exporting; raise a `PluginError` (e.g. a port in use) to refuse."""
        ...

    def aclose(self) -> Awaitable[None]:
        """Stop exporting and release everything; never hangs on a dead collector."""
        ...
