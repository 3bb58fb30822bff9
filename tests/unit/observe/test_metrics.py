"""The counters a call adds to, and the histogram snapshot operators read."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugwire._config._structs import _DEFAULT_BUCKETS
from plugwire._observe.metrics import CallCounters
from plugwire.observe import DEFAULT_BUCKETS, Histogram, ManagerMetrics

BOUNDS = (0.1, 0.5, 1.0)


def test_the_configs_default_buckets_are_the_histograms() -> None:
    assert _DEFAULT_BUCKETS == DEFAULT_BUCKETS
    assert list(DEFAULT_BUCKETS) == sorted(set(DEFAULT_BUCKETS))


def test_a_duration_lands_in_the_first_bucket_whose_bound_is_not_below_it() -> None:
    counters = CallCounters(BOUNDS)
    for seconds in (0.0, 0.1, 0.10001, 0.5, 0.7, 1.0, 1.5, 60.0):
        counters.succeeded(seconds)
    histogram = counters.histogram()
    # le=0.1 holds 0.0 and 0.1 (a bound is inclusive, as Prometheus's `le`), +Inf holds 1.5 and 60.
    assert histogram.counts == (2, 2, 2, 2)
    assert histogram.count == 8
    assert histogram.sum == pytest.approx(63.90001)
    assert histogram.cumulative() == [(0.1, 2), (0.5, 4), (1.0, 6), (math.inf, 8)]


def test_failures_are_counted_by_code_and_timed_like_successes() -> None:
    counters = CallCounters(BOUNDS)
    counters.failed(1204, 2.0)
    counters.failed(1204, 0.05)
    counters.failed(1401, 0.0)
    counters.succeeded(0.2)
    assert counters.failures == 3
    assert counters.successes == 1
    assert counters.failures_by_code == {1204: 2, 1401: 1}
    assert counters.histogram().counts == (2, 1, 0, 1)


def test_quantiles_interpolate_inside_their_bucket_like_histogram_quantile() -> None:
    histogram = Histogram(bounds=BOUNDS, counts=(0, 10, 0, 0), sum=3.0, count=10)
    assert histogram.quantile(0.5) == pytest.approx(0.3)  # halfway between 0.1 and 0.5
    assert histogram.quantile(1.0) == pytest.approx(0.5)
    assert histogram.quantile(0.0) == pytest.approx(0.1)
    assert histogram.mean == pytest.approx(0.3)
    overflow = Histogram(bounds=BOUNDS, counts=(0, 0, 0, 4), sum=40.0, count=4)
    assert overflow.quantile(0.99) == 1.0  # in +Inf: the largest finite bound, as Prometheus says
    empty = Histogram(bounds=BOUNDS, counts=(0, 0, 0, 0))
    assert (empty.quantile(0.5), empty.mean) == (0.0, 0.0)
    with pytest.raises(ValueError, match="quantile"):
        histogram.quantile(1.5)


@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=60))
def test_a_quantile_is_never_outside_its_buckets_bounds(durations: list[float]) -> None:
    counters = CallCounters(BOUNDS)
    for seconds in durations:
        counters.succeeded(seconds)
    histogram = counters.histogram()
    estimates = [histogram.quantile(q / 10) for q in range(11)]
    assert estimates == sorted(estimates)  # monotone in q
    assert all(0.0 <= e <= BOUNDS[-1] for e in estimates)
    assert histogram.cumulative()[-1] == (math.inf, len(durations))


def test_merging_adds_bucket_by_bucket() -> None:
    a = Histogram(bounds=BOUNDS, counts=(1, 2, 3, 4), sum=10.0, count=10)
    b = Histogram(bounds=BOUNDS, counts=(4, 3, 2, 1), sum=5.0, count=10)
    merged = Histogram.merge(BOUNDS, [a, b])
    assert merged == Histogram(bounds=BOUNDS, counts=(5, 5, 5, 5), sum=15.0, count=20)
    assert Histogram.merge(BOUNDS, []) == Histogram(bounds=BOUNDS, counts=(0, 0, 0, 0))


def test_snapshots_are_frozen_and_encode_to_json() -> None:
    snapshot = ManagerMetrics.of(BOUNDS, {})
    with pytest.raises(AttributeError):
        snapshot.requests_total = 5  # type: ignore[misc]
    data = msgspec.json.decode(msgspec.json.encode(snapshot))
    assert data["requests_total"] == 0
    assert data["request_duration"]["counts"] == [0, 0, 0, 0]
