"""The arithmetic of `plugwire top`: frames from two hand-made snapshots, the Prometheus text
parsed back into metrics, and a frame rendered at two widths."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console

from plugwire._cli._top import COLUMNS, _frames, _ReadError, render_frame
from plugwire._cli._top_model import Snapshot, build_frame, frame_data, histogram_delta
from plugwire._cli._top_scrape import ScrapeError, parse_exposition
from plugwire._models import Status
from plugwire._observe.metrics import Histogram, ManagerMetrics, PluginMetrics
from plugwire._observe.prometheus_collector import SnapshotCollector

BOUNDS = (0.001, 0.01, 0.1)


def hist(*counts: int, total: float = 0.0) -> Histogram:
    return Histogram(bounds=BOUNDS, counts=counts, sum=total, count=sum(counts))


def plugin(name: str = "p", **fields: Any) -> PluginMetrics:
    values: dict[str, Any] = {
        "name": name,
        "transport": "executable",
        "status": Status.HEALTHY,
        "requests_total": 0,
        "requests_success": 0,
        "requests_failure": 0,
        "requests_cancelled": 0,
        "active_requests": 0,
        "failures_by_code": {},
        "retries": 0,
        "rate_limited": 0,
        "circuit_breaker_rejections": 0,
        "circuit_breaker_trips": 0,
        "circuit_breaker_state": "closed",
        "health_checks": 0,
        "health_check_failures": 0,
        "health_check_latency": 0.0,
        "restarts": 0,
        "processes": 1,
        "duration": hist(0, 0, 0, 0),
        "response_time": 0.0,
        "error_rate": 0.0,
    }
    return PluginMetrics(**(values | fields))


def test_a_histogram_delta_is_the_new_observations_only() -> None:
    delta = histogram_delta(hist(1, 2, 0, 0, total=0.01), hist(3, 2, 4, 1, total=1.5))
    assert delta == Histogram(bounds=BOUNDS, counts=(2, 0, 4, 1), sum=1.49, count=7)


def test_histograms_that_cannot_be_compared_have_no_delta() -> None:
    assert histogram_delta(hist(5, 0, 0, 0), hist(1, 0, 0, 0)) is None  # counters started again
    other = Histogram(bounds=(0.5,), counts=(1, 0), sum=0.1, count=1)
    assert histogram_delta(hist(0, 0, 0, 0), other) is None


def test_a_frame_has_rates_quantiles_and_error_rate_over_its_window() -> None:
    before = plugin(requests_total=10, requests_success=8, requests_failure=2, failures_by_code={1203: 2})
    before = msgspec.structs.replace(before, duration=hist(10, 0, 0, 0))
    after = plugin(
        requests_total=30,
        requests_success=23,
        requests_failure=7,
        failures_by_code={1203: 4, 1401: 3},
        active_requests=2,
        circuit_breaker_state="half-open",
        processes=3,
        duration=hist(10, 18, 2, 0),  # 20 calls ended: 18 in (1 ms, 10 ms], 2 in (10 ms, 100 ms]
    )
    frame = build_frame(Snapshot(100.0, {"p": before}), Snapshot(102.0, {"p": after}), "src")
    assert frame.window == 2.0
    (row,) = frame.rows
    assert row.calls == 30
    assert row.calls_per_second == 10.0  # 20 ended calls in 2 s
    assert row.error_rate == 0.25  # 5 of the 20 failed
    # Ranks 10 and 19.8 of 20, interpolated in their buckets as histogram_quantile does.
    assert row.p50 == pytest.approx(0.001 + 0.009 * 10 / 18)
    assert row.p99 == pytest.approx(0.01 + 0.09 * 1.8 / 2)
    assert row.errors_by_code == {1203: 4, 1401: 3}  # since registration
    assert (row.breaker, row.processes, row.in_flight, row.status) == ("half-open", 3, 2, "healthy")


def test_without_a_window_or_calls_the_rates_are_unknown() -> None:
    now = Snapshot(5.0, {"p": plugin(requests_total=4, requests_success=4, duration=hist(4, 0, 0, 0))})
    first = build_frame(None, now, "src")
    assert first.window is None
    assert (first.rows[0].calls_per_second, first.rows[0].p50, first.rows[0].error_rate) == (None, None, None)
    idle = build_frame(now, Snapshot(6.0, now.plugins), "src")
    assert idle.rows[0].calls_per_second == 0.0
    assert (idle.rows[0].p50, idle.rows[0].p99, idle.rows[0].error_rate) == (None, None, None)


def test_a_plugin_whose_counters_started_again_or_is_new_has_no_rates() -> None:
    old = plugin(requests_total=50, requests_success=50, duration=hist(50, 0, 0, 0))
    restarted = plugin(requests_total=3, requests_success=3, duration=hist(3, 0, 0, 0))
    frame = build_frame(Snapshot(1.0, {"p": old}), Snapshot(2.0, {"p": restarted, "q": plugin("q")}), "src")
    assert [row.name for row in frame.rows] == ["p", "q"]
    assert all(row.calls_per_second is None for row in frame.rows)


def test_frame_data_is_json_ready() -> None:
    after = plugin(requests_total=2, requests_failure=2, failures_by_code={1205: 2}, duration=hist(2, 0, 0, 0))
    data = frame_data(build_frame(Snapshot(1.0, {"p": plugin()}), Snapshot(3.0, {"p": after}), "url"))
    assert data["window"] == 2.0
    assert data["plugins"][0]["errors_by_code"] == {"1205": 2}
    assert data["plugins"][0]["error_rate"] == 1.0
    assert msgspec.json.decode(msgspec.json.encode(data)) == data


def exposition(metrics: ManagerMetrics, prefix: str = "plugwire_") -> str:
    collector = SnapshotCollector(prefix, 1.0)
    collector.last = metrics  # not attached to a manager: every scrape serves this snapshot
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


@pytest.mark.parametrize("prefix", ["plugwire_", "myapp_plugins_", ""])
def test_a_scrape_parses_back_into_the_metrics_it_was_made_from(prefix: str) -> None:
    busy = plugin(
        "text-stats",
        requests_total=12,
        requests_success=9,
        requests_failure=3,
        requests_cancelled=1,
        failures_by_code={1203: 2, 1401: 1},
        active_requests=1,
        retries=4,
        circuit_breaker_state="open",
        circuit_breaker_trips=1,
        status=Status.DEGRADED,
        processes=2,
        restarts=1,
        duration=hist(3, 6, 2, 0, total=0.25),
        response_time=0.25 / 11,
        error_rate=0.25,
    )
    metrics = ManagerMetrics.of(BOUNDS, {"text-stats": busy, "idle": plugin("idle", transport="grpc")})
    snapshot = parse_exposition(exposition(metrics, prefix))
    assert snapshot.taken_at == pytest.approx(metrics.taken_at)
    assert snapshot.plugins == {"text-stats": busy, "idle": plugin("idle", transport="grpc")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html>hello</html>", "does not serve Prometheus's text format"),
        ("# TYPE other_total counter\nother_total 3\n", "serves no plugwire series"),
        ("", "serves no plugwire series"),
    ],
)
def test_text_that_is_not_a_hosts_series_is_refused(text: str, message: str) -> None:
    with pytest.raises(ScrapeError, match=message):
        parse_exposition(text)


def busy_frame() -> Any:
    before = plugin("text-stats", duration=hist(0, 0, 0, 0))
    after = plugin(
        "text-stats",
        requests_total=40,
        requests_success=38,
        requests_failure=2,
        failures_by_code={1203: 2},
        duration=hist(30, 10, 0, 0),
    )
    return build_frame(Snapshot(1.0, {"text-stats": before}), Snapshot(3.0, {"text-stats": after}), "http://h/metrics")


def test_a_wide_console_shows_one_table_row_per_plugin() -> None:
    out = Console(record=True, width=120, color_system=None)
    out.print(render_frame(busy_frame(), out))
    text = out.export_text()
    header = next(line for line in text.splitlines() if line.startswith("plugin"))
    assert tuple(header.split()) == COLUMNS
    row = next(line for line in text.splitlines() if line.startswith("text-stats"))
    assert row.split()[:4] == ["text-stats", "healthy", "40", "20.0"]
    assert "5.0%" in row
    assert "1203x2" in row


def test_a_60_column_console_shows_each_plugin_on_a_few_lines_within_the_width() -> None:
    out = Console(record=True, width=60, color_system=None)
    out.print(render_frame(busy_frame(), out))
    text = out.export_text()
    assert max(map(len, text.splitlines())) <= 60
    assert "text-stats  healthy  executable" in text
    assert "calls 40  20.0/s" in text
    assert "err 5.0%  errors 1203x2" in text


async def test_a_failed_read_after_the_first_shows_in_the_frame_and_the_next_read_recovers() -> None:
    reads = iter(
        [
            Snapshot(1.0, {"p": plugin(requests_total=1, requests_success=1, duration=hist(1, 0, 0, 0))}),
            _ReadError("cannot read metrics from u: Connection refused"),
            Snapshot(3.0, {"p": plugin(requests_total=5, requests_success=5, duration=hist(5, 0, 0, 0))}),
        ]
    )

    async def read() -> Snapshot:
        result = next(reads)
        if isinstance(result, Exception):
            raise result
        return result

    frames = [frame async for frame in _frames(read, "u", 0.001, 2)]
    assert frames[0].error == "cannot read metrics from u: Connection refused"
    assert frames[0].rows[0].calls == 1  # the last good numbers stay on screen
    assert frames[1].error == ""
    assert frames[1].rows[0].calls_per_second == 2.0  # 4 calls over the 2 s since the last good read
