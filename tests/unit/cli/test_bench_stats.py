"""The arithmetic of `plugwire bench`: exact quantiles, the reservoir, the summary, the text histogram."""

from __future__ import annotations

import random

import pytest

from plugwire._cli._bench import BENCH_BUCKETS, Recorder, Reservoir, exact_quantile, format_seconds, histogram_lines
from plugwire._errors import ExecutionError, PluginTimeoutError


def test_quantiles_are_nearest_rank_samples() -> None:
    samples = list(range(1, 101))  # 1..100
    assert exact_quantile(samples, 0.5) == 50
    assert exact_quantile(samples, 0.9) == 90
    assert exact_quantile(samples, 0.99) == 99
    assert exact_quantile(samples, 1.0) == 100
    assert exact_quantile(samples, 0.0) == 1
    assert exact_quantile([7], 0.99) == 7
    assert exact_quantile([1, 2, 3], 0.5) == 2  # rank ceil(1.5) = 2


@pytest.mark.parametrize(("samples", "q"), [([], 0.5), ([1], 1.5), ([1], -0.1)])
def test_quantile_refuses_no_samples_and_q_outside_0_1(samples: list[int], q: float) -> None:
    with pytest.raises(ValueError):
        exact_quantile(samples, q)


def test_the_reservoir_keeps_everything_until_full_then_a_bounded_sample() -> None:
    reservoir = Reservoir(10, random.Random(1))
    for value in range(10):
        reservoir.add(value)
    assert list(reservoir.values) == list(range(10))
    assert reservoir.exact
    for value in range(10, 1000):
        reservoir.add(value)
    assert len(reservoir.values) == 10
    assert reservoir.seen == 1000
    assert not reservoir.exact
    assert set(reservoir.values) <= set(range(1000))
    assert any(value >= 10 for value in reservoir.values)  # later values got in (seeded: deterministic)


def test_the_summary_counts_calls_errors_by_code_and_buckets() -> None:
    recorder = Recorder(keep=None)
    for nanoseconds in (100_000, 150_000, 300_000, 900_000):  # 100 µs .. 900 µs
        recorder.record(nanoseconds, None)
    recorder.record(2_000_000, ExecutionError("first"))
    recorder.record(3_000_000, ExecutionError("second"))
    recorder.record(40_000, PluginTimeoutError("late"))
    data = recorder.summary(plugin="p", concurrency=2, seconds=0.5)
    assert (data["calls"], data["succeeded"], data["failed"]) == (7, 4, 3)
    assert data["throughput"] == 14.0
    assert data["errors"] == [
        {"code": 1203, "name": "EXECUTION_FAILED", "count": 2, "message": "first"},
        {"code": 1204, "name": "TIMEOUT", "count": 1, "message": "late"},
    ]
    latency = data["latency"]
    # Sorted: 40, 100, 150, 300, 900, 2000, 3000 µs.
    assert latency["p50"] == pytest.approx(300e-6)
    assert latency["p90"] == pytest.approx(3000e-6)
    assert latency["max"] == pytest.approx(3000e-6)
    assert latency["mean"] == pytest.approx(6.49e-3 / 7)
    assert latency["exact"] is True
    # From the first non-empty bucket (<= 50 µs) to the last (<= 5 ms), empty ones between kept.
    assert data["histogram"] == [
        {"le": 5e-05, "count": 1},
        {"le": 0.0001, "count": 1},
        {"le": 0.0002, "count": 1},
        {"le": 0.0005, "count": 1},
        {"le": 0.001, "count": 1},
        {"le": 0.002, "count": 1},
        {"le": 0.005, "count": 1},
    ]


def test_a_run_without_calls_has_no_quantiles() -> None:
    data = Recorder(keep=10).summary(plugin="p", concurrency=1, seconds=0.0)
    assert data["latency"] == {"exact": True}
    assert data["histogram"] == []
    assert data["throughput"] == 0.0


def test_the_buckets_step_1_2_5_from_10_microseconds_to_100_seconds() -> None:
    assert BENCH_BUCKETS[:4] == (1e-05, 2e-05, 5e-05, 0.0001)
    assert BENCH_BUCKETS[-2:] == (50.0, 100.0)
    assert list(BENCH_BUCKETS) == sorted(set(BENCH_BUCKETS))


def test_text_histogram_bars_scale_to_the_fullest_bucket() -> None:
    lines = histogram_lines(
        [{"le": 0.0005, "count": 30}, {"le": 0.001, "count": 0}, {"le": float("inf"), "count": 10}], 6
    )
    assert lines == [
        "<= 500 µs  ██████  30   75.0%",
        "<= 1 ms             0    0.0%",
        "<= +Inf    ██      10   25.0%",
    ]
    assert histogram_lines([]) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0 µs"), (42e-6, "42 µs"), (0.0005, "500 µs"), (0.0123, "12.3 ms"), (1.5, "1.5 s"), (2500.0, "2500 s")],
)
def test_durations_print_in_the_unit_that_fits(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
