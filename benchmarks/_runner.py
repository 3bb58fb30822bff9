"""The measuring loop: set up every side of a case, then time them interleaved, A B A B ...

Drift on a shared machine (another job starting, the CPU clocking down) then hits the
candidate and its baselines alike. Each side first runs a warm-up, which also calibrates how
many ops make one batch of about `batch_s` seconds; then every round runs one batch of each
side in turn. Latency samples are per op, so the p99 is a real tail, not a batch mean.
"""

from __future__ import annotations

import faulthandler
import gc
import importlib.util
import inspect
import math
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._model import Case, Env, Kind, Op, PinMode, Side, SkipCase, Target, Verdict
from ._pinning import Placement
from ._profile import profile_op
from ._stats import Summary, judge, summarize

__all__ = ["Row", "Settings", "run_case", "run_cases"]

_MAX_BATCH = 100_000


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and how often to measure.

    Attributes:
        quick: Quick mode: few short rounds, only each case's first placement; checks that
            every case runs and produces numbers, judges nothing.
        rounds: Measured rounds per case (each runs one batch of every side).
        warmup_s: Seconds of warm-up per side (also used to size batches).
        batch_s: Target seconds per batch.
        pin: Placements forced by `--pin`, or None for each case's default.
        profile_dir: Write a cProfile profile of each case's candidate there (None: no profiles).
        profile_s: Seconds of candidate work to profile.
        instances: Each case's sides are set up this many times, fresh (new processes, new
            connections), and the rounds are shared out among the set-ups; samples of all
            set-ups are pooled. One set-up of a pair of processes is a random draw: where their
            memory lands in the CPU's caches moved the same bare asyncio echo between 21 and
            27 µs from one start to the next, more than some targets allow.
        case_timeout_s: A case-placement that takes longer dumps every thread's stack and ends the run.
    """

    quick: bool = False
    rounds: int = 25
    warmup_s: float = 0.3
    batch_s: float = 0.1
    pin: tuple[PinMode, ...] | None = None
    profile_dir: Path | None = None
    profile_s: float = 1.0
    instances: int = 3
    case_timeout_s: float = 300.0

    @classmethod
    def quick_mode(cls, pin: tuple[PinMode, ...] | None = None) -> Settings:
        """A few seconds per case: enough to prove the case runs, not to judge it."""
        return cls(quick=True, rounds=3, warmup_s=0.02, batch_s=0.01, pin=pin, instances=1, case_timeout_s=120.0)

    def rounds_for(self, case: Case) -> int:
        if case.rounds is None:
            return self.rounds
        return min(case.rounds, self.rounds) if self.quick else case.rounds


@dataclass(slots=True)
class Row:
    """One line of the table: a case's candidate against one of its baselines, at one placement."""

    case: str
    pin: PinMode
    kind: Kind
    candidate_label: str
    baseline_label: str
    target: Target | None
    verdict: Verdict
    candidate: Summary | None = None
    baseline: Summary | None = None
    ratio: float | None = None
    tail_ratio: float | None = None
    rounds: int = 0
    batches: tuple[int, int] = (0, 0)
    detail: str = ""
    note: str = ""
    placement: str = ""
    profile: dict[str, Any] | None = field(default=None)


@dataclass(slots=True)
class _Live:
    """A side that is set up: its op, whether it is async, its batch size, its samples."""

    side: Side
    op: Op
    is_async: bool = False
    batch: int = 1
    samples: list[float] = field(default_factory=list)


_SETTLE_BYTES = 4 << 20


def settle_allocator() -> None:
    """Put the C allocator in the state a long-running process reaches, before anything is timed.

    glibc serves a block above its mmap threshold (128 KiB at start) with a fresh `mmap` and
    gives it back with `munmap`, until the first such block is freed: the threshold then rises
    to that block's size. asyncio's streams read into a new 256 KiB buffer on every read, so
    until the threshold has risen each read also pays for an `mmap`, page faults and an
    `munmap` with its TLB flush: a bare asyncio echo measured 28 µs a round trip instead of
    15 µs, depending only on whether an earlier case in the same run had happened to free a
    big block. Freeing one 4 MiB block here makes every case start in the steady state, the
    stricter floor.
    """
    block = bytes(_SETTLE_BYTES)
    del block


async def run_cases(
    cases: Sequence[Case],
    settings: Settings,
    env: Env,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[Row]:
    """Run every case at each of its placements, in order; a failing case becomes an error row."""
    settle_allocator()
    plan = [(case, pin) for case in cases for pin in case.pin_modes(settings.pin)]
    if settings.quick and settings.pin is None:
        plan = [(case, case.pin_modes(None)[0]) for case in cases]
    rows: list[Row] = []
    for index, (case, pin) in enumerate(plan, 1):
        started = time.perf_counter()
        first_placement = pin == case.pin_modes(settings.pin)[0]
        faulthandler.dump_traceback_later(settings.case_timeout_s, exit=True)
        try:
            new = await run_case(case, pin, settings, env, profile=first_placement)
        finally:
            faulthandler.cancel_dump_traceback_later()
        rows.extend(new)
        verdicts = ", ".join(row.verdict.value for row in new)
        progress(f"[{index}/{len(plan)}] {case.name} [{pin}] {time.perf_counter() - started:.1f}s: {verdicts}")
    return rows


async def run_case(case: Case, pin: PinMode, settings: Settings, env: Env, *, profile: bool = False) -> list[Row]:
    """Measure one case at one placement; never raises for a failing side (it becomes an error row)."""
    missing = sorted({m for side in case.sides for m in side.requires if importlib.util.find_spec(m) is None})
    if missing:
        reason = f"needs {', '.join(missing)} (pip install -e '.[bench]')"
        return _rows_without_numbers(case, pin, Verdict.SKIPPED, reason)
    try:
        placement = Placement.for_mode(pin)
    except ValueError as exc:
        return _rows_without_numbers(case, pin, Verdict.SKIPPED, str(exc))
    rounds = settings.rounds_for(case)
    instances = max(1, min(settings.instances, rounds))
    profile_summary: dict[str, Any] | None = None
    try:
        placement.pin_host()
        live = [_Live(side, _no_op) for side in case.sides]
        for instance in range(instances):
            async with AsyncExitStack() as stack:
                for item in live:
                    item.op = await stack.enter_async_context(item.side.factory(env))
                placement.pin_children()
                for item in live:
                    await _warm_up(item, case.kind, settings)
                gc.collect()
                # Rounds shared out as evenly as they go: 25 over 3 set-ups is 9, 8, 8.
                for _ in range(rounds // instances + (instance < rounds % instances)):
                    for item in live:
                        item.samples.extend(
                            await _timed(item.op, item.batch, item.is_async, case.kind, item.side.per_call)
                        )
                if profile and instance == 0 and settings.profile_dir is not None:
                    candidate = live[0]
                    profile_summary = await profile_op(
                        candidate.op,
                        candidate.is_async,
                        candidate.side.per_call,
                        settings.profile_s,
                        settings.profile_dir / f"{case.name}.{pin}.prof",
                    )
        rows = _rows(case, pin, live, rounds, profile_summary, quick=settings.quick)
    except SkipCase as exc:
        return _rows_without_numbers(case, pin, Verdict.SKIPPED, str(exc))
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        print(f"benchmark case {case.name} [{pin}] failed: {detail}", file=sys.stderr)
        return _rows_without_numbers(case, pin, Verdict.ERROR, detail)
    for row in rows:
        row.placement = placement.describe()
    return rows


def _no_op() -> None:
    """Stands for a side's op until its factory has made one."""


async def _warm_up(item: _Live, kind: Kind, settings: Settings) -> None:
    """Run the side for `warmup_s` and size its batch to about `batch_s`."""
    start = time.perf_counter()
    first = item.op()
    item.is_async = inspect.isawaitable(first)
    result = await first if item.is_async else first
    if kind is Kind.MEMORY:
        _check_bytes(item.side, result)
    calls = 1
    while time.perf_counter() - start < settings.warmup_s:
        await _timed(item.op, 1, item.is_async, kind, item.side.per_call)
        calls += 1
    if kind is Kind.MEMORY:
        item.batch = 1
        return
    seconds_per_call = (time.perf_counter() - start) / calls
    item.batch = max(1, min(_MAX_BATCH, round(settings.batch_s / seconds_per_call)))


async def _timed(op: Op, n: int, is_async: bool, kind: Kind, per_call: int) -> list[float]:
    """Run `op` n times; one sample per call (seconds per operation, operations per second, or bytes)."""
    clock = time.perf_counter
    samples: list[float] = []
    for _ in range(n):
        start = clock()
        result = op()
        if is_async:
            result = await result
        elapsed = max(clock() - start, 1e-9)
        if kind is Kind.MEMORY:
            samples.append(float(result))
        elif kind is Kind.THROUGHPUT:
            samples.append(per_call / elapsed)
        else:
            samples.append(elapsed / per_call)
    return samples


def _check_bytes(side: Side, result: Any) -> None:
    """Fail early, with the side's name, when a memory op returns something that is not a size."""
    ok = isinstance(result, int | float) and not isinstance(result, bool) and math.isfinite(result) and result > 0
    if not ok:
        raise TypeError(f"side {side.label!r} returned {result!r}; a memory op must return a positive number of bytes")


def _rows(
    case: Case, pin: PinMode, live: list[_Live], rounds: int, profile: dict[str, Any] | None, *, quick: bool
) -> list[Row]:
    candidate = summarize(live[0].samples, case.kind)
    rows = []
    for versus, item in zip(case.versus, live[1:], strict=True):
        baseline = summarize(item.samples, case.kind)
        ratio, tail_ratio, verdict = judge(candidate, baseline, versus.target)
        if quick and verdict in {Verdict.MET, Verdict.NOT_MET}:
            verdict = Verdict.UNJUDGED
        rows.append(
            Row(
                case=case.name,
                pin=pin,
                kind=case.kind,
                candidate_label=case.candidate.label,
                baseline_label=versus.baseline.label,
                target=versus.target,
                verdict=verdict,
                candidate=candidate,
                baseline=baseline,
                ratio=ratio,
                tail_ratio=tail_ratio,
                rounds=rounds,
                batches=(live[0].batch, item.batch),
                note=case.note,
                profile=profile,
            )
        )
    return rows


def _rows_without_numbers(case: Case, pin: PinMode, verdict: Verdict, detail: str) -> list[Row]:
    return [
        Row(
            case=case.name,
            pin=pin,
            kind=case.kind,
            candidate_label=case.candidate.label,
            baseline_label=versus.baseline.label,
            target=versus.target,
            verdict=verdict,
            detail=detail,
            note=case.note,
        )
        for versus in case.versus
    ]
