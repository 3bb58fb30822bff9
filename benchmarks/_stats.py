"""Statistics of measured samples, and the ratio and verdict of one row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._model import Kind, Target, Verdict

__all__ = ["Summary", "judge", "percentile", "summarize"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks.

    Raises:
        ValueError: No samples, or q outside 0-100.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Summary:
    """One side's numbers.

    Attributes:
        median: The middle sample.
        p99: The tail: the value 99% of samples are better than (for latency and memory the
            99th percentile; for throughput, where higher is better, the 1st percentile).
        mean, best, worst: As named; best/worst follow the kind's direction.
        n: Number of samples.
    """

    median: float
    p99: float
    mean: float
    best: float
    worst: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(samples: Sequence[float], kind: Kind) -> Summary:
    """Summarize the samples of one side.

    Raises:
        ValueError: No samples, or a sample that is not a finite positive number.
    """
    if not samples:
        raise ValueError("no samples")
    bad = [s for s in samples if not (math.isfinite(s) and s > 0)]
    if bad:
        raise ValueError(f"{len(bad)} samples are not finite positive numbers (first: {bad[0]!r})")
    tail = 1.0 if kind.higher_is_better else 99.0
    best, worst = (max(samples), min(samples)) if kind.higher_is_better else (min(samples), max(samples))
    return Summary(
        median=percentile(samples, 50),
        p99=percentile(samples, tail),
        mean=math.fsum(samples) / len(samples),
        best=best,
        worst=worst,
        n=len(samples),
    )


def judge(candidate: Summary, baseline: Summary, target: Target | None) -> tuple[float, float, Verdict]:
    """Ratio of medians, ratio of tails, and the verdict of one row.

    The ratio is always candidate ÷ baseline, so a target reads the same way for every kind:
    `≤ 1.5x` for latency (lower is better), `≥ 0.5x` for throughput (higher is better).
    """
    ratio = candidate.median / baseline.median
    tail_ratio = candidate.p99 / baseline.p99
    if target is None:
        return ratio, tail_ratio, Verdict.INFO
    return ratio, tail_ratio, Verdict.MET if target.met(ratio) else Verdict.NOT_MET
