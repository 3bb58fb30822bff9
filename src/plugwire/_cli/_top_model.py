"""What `plugwire top` shows: one frame of rows, computed from two metrics snapshots.

Both of its sources, a Prometheus endpoint and a host `top` runs itself, give a `Snapshot`
(each plugin's `PluginMetrics`); a frame is the difference between two of them: calls per
second, latency quantiles and error rate over the interval between them, beside the
plugin's state now (status, breaker, processes, calls in flight).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._observe.metrics import Histogram, PluginMetrics

__all__ = ["Frame", "Row", "Snapshot", "build_frame", "frame_data", "histogram_delta"]


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Every plugin's metrics at one moment.

    Attributes:
        taken_at: When they were read (seconds since the epoch).
        plugins: Each plugin's metrics by name.
    """

    taken_at: float
    plugins: dict[str, PluginMetrics]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One plugin in a frame. Rates and quantiles are over the frame's window; None when
    there is no window (a first snapshot, a plugin new or restarted since the last one) or
    no call ended in it.

    Attributes:
        name: The plugin's name.
        transport: Its transport.
        status: Its health status now.
        calls: Calls made to it since it was registered.
        calls_per_second: Calls that ended in the window, per second.
        p50: The median latency (seconds) of the calls that ended in the window.
        p99: Their 99th percentile.
        error_rate: Failed calls over ended calls in the window (0 to 1).
        errors_by_code: Failed calls since it was registered, by error code.
        breaker: Its circuit breaker's state ("closed", "open", "half-open", "disabled").
        processes: Its live processes.
        in_flight: Its calls in flight now.
        restarts: Its processes started again after a crash or a failed health check.
    """

    name: str
    transport: str
    status: str
    calls: int
    calls_per_second: float | None
    p50: float | None
    p99: float | None
    error_rate: float | None
    errors_by_code: dict[int, int]
    breaker: str
    processes: int
    in_flight: int
    restarts: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """What one refresh shows.

    Attributes:
        source: Where the numbers come from (the URL, or the config file).
        taken_at: When the newer snapshot was read.
        window: Seconds between the two snapshots; None for a first snapshot.
        rows: One row per plugin, by name.
        error: Why the last read failed, when it did (the rows are then the last good ones).
    """

    source: str
    taken_at: float
    window: float | None
    rows: tuple[Row, ...]
    error: str = ""


def histogram_delta(old: Histogram, new: Histogram) -> Histogram | None:
    """The observations `new` has that `old` did not; None when they cannot be compared
    (other bounds, or a count went down: the plugin's counters started again)."""
    if old.bounds != new.bounds or len(old.counts) != len(new.counts):
        return None
    counts = tuple(n - o for n, o in zip(new.counts, old.counts, strict=True))
    if any(count < 0 for count in counts):
        return None
    return Histogram(bounds=new.bounds, counts=counts, sum=max(new.sum - old.sum, 0.0), count=sum(counts))


def _row(old: PluginMetrics | None, new: PluginMetrics, window: float | None) -> Row:
    rate = p50 = p99 = error_rate = None
    delta = histogram_delta(old.duration, new.duration) if old is not None else None
    if old is not None and delta is not None and window:
        ok = new.requests_success - old.requests_success
        failed = new.requests_failure - old.requests_failure
        if ok >= 0 and failed >= 0 and new.requests_total >= old.requests_total:
            rate = (ok + failed) / window
            if ok + failed:
                error_rate = failed / (ok + failed)
            if delta.count:
                p50, p99 = delta.quantile(0.5), delta.quantile(0.99)
    return Row(
        name=new.name,
        transport=new.transport,
        status=str(new.status),
        calls=new.requests_total,
        calls_per_second=rate,
        p50=p50,
        p99=p99,
        error_rate=error_rate,
        errors_by_code=dict(sorted(new.failures_by_code.items())),
        breaker=new.circuit_breaker_state,
        processes=new.processes,
        in_flight=new.active_requests,
        restarts=new.restarts,
    )


def build_frame(previous: Snapshot | None, current: Snapshot, source: str) -> Frame:
    """The frame from `previous` to `current` (rates need both; without `previous`, None)."""
    window = current.taken_at - previous.taken_at if previous is not None else None
    if window is not None and window <= 0:
        window = None
    before = previous.plugins if previous is not None else {}
    rows = tuple(_row(before.get(name), current.plugins[name], window) for name in sorted(current.plugins))
    return Frame(source=source, taken_at=current.taken_at, window=window, rows=rows)


def frame_data(frame: Frame) -> dict[str, Any]:
    """A frame as JSON-ready data (`plugwire top --once --json`); times in seconds."""
    data: dict[str, Any] = {
        "source": frame.source,
        "taken_at": frame.taken_at,
        "window": frame.window,
        "plugins": [
            {**dataclasses.asdict(row), "errors_by_code": {str(code): n for code, n in row.errors_by_code.items()}}
            for row in frame.rows
        ],
    }
    if frame.error:
        data["error"] = frame.error
    return data
