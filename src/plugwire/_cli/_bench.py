"""`plugwire bench`: a load generator, N calls (or a duration) at C concurrent, with a latency report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import time
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

import click

from .._errors import PluginError
from .._observe.metrics import CallCounters, Histogram
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    JSON_OPTION,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    code_name,
    console,
    fail,
    load_config,
    print_json,
    read_data,
)

__all__ = ["BENCH_BUCKETS", "QUANTILES", "Recorder", "Reservoir", "bench_command", "exact_quantile", "histogram_lines"]

#: Bucket bounds (seconds) of the latency histogram bench prints: 1-2-5 steps from 10 µs to
#: 100 s, finer than the metrics' buckets so that a fast plugin's calls spread over several.
BENCH_BUCKETS: tuple[float, ...] = (
    *(round(m * 10.0**e, 12) for e in range(-5, 2) for m in (1, 2, 5)),
    100.0,
)
#: The quantiles the summary reports, by name.
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
#: Calls made when neither -n nor --duration is given.
DEFAULT_CALLS = 1000
#: With `--duration`, quantiles come from a uniform sample of at most this many calls.
RESERVOIR_SIZE = 100_000
_BAR_WIDTH = 30


def exact_quantile(ordered: Sequence[int], q: float) -> int:
    """The `q`-quantile of sorted samples by the nearest-rank method: the smallest sample
    with at least a fraction `q` of the samples at or below it (`q=1`: the largest).

    Raises:
        ValueError: `ordered` is empty, or `q` is outside [0, 1].
    """
    if not ordered:
        raise ValueError("no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q!r}")
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[rank - 1]


class Reservoir:
    """A uniform random sample of at most `size` values from a stream of unknown length
    (Vitter's algorithm R): what `--duration` computes its quantiles from."""

    def __init__(self, size: int, rng: random.Random | None = None) -> None:
        self.size = size
        self.seen = 0
        self.values: array[int] = array("q")
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not security

    def add(self, value: int) -> None:
        """Offer one value; it is kept with probability `size / seen`."""
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.size:
            self.values[slot] = value

    @property
    def exact(self) -> bool:
        """Whether every value offered is kept (the quantiles are exact)."""
        return self.seen == len(self.values)


class Recorder:
    """Every finished call of a run: its latency (nanoseconds) and, when it failed, its error."""

    def __init__(self, keep: int | None) -> None:
        self.counters = CallCounters(BENCH_BUCKETS)
        self.samples = Reservoir(keep if keep is not None else RESERVOIR_SIZE)
        self.max_ns = 0
        self.first_message: dict[int, str] = {}

    def record(self, nanoseconds: int, error: PluginError | None) -> None:
        """Count one call: successful when `error` is None."""
        seconds = nanoseconds / 1e9
        if error is None:
            self.counters.succeeded(seconds)
        else:
            self.counters.failed(error.code, seconds)
            self.first_message.setdefault(error.code, error.message)
        self.samples.add(nanoseconds)
        self.max_ns = max(self.max_ns, nanoseconds)

    @property
    def calls(self) -> int:
        return self.counters.successes + self.counters.failures

    def summary(self, *, plugin: str, concurrency: int, seconds: float) -> dict[str, Any]:
        """The run as JSON-ready data (what `--json` prints and the tables show)."""
        counters = self.counters
        ordered = sorted(self.samples.values)
        latency: dict[str, Any] = {"exact": self.samples.exact}
        if ordered:
            latency |= {name: exact_quantile(ordered, q) / 1e9 for name, q in QUANTILES}
            latency |= {"max": self.max_ns / 1e9, "mean": counters.seconds / self.calls}
        histogram = counters.histogram()
        errors = [
            {"code": int(code), "name": code_name(code), "count": count, "message": self.first_message[code]}
            for code, count in sorted(counters.failures_by_code.items())
        ]
        return {
            "plugin": plugin,
            "calls": self.calls,
            "succeeded": counters.successes,
            "failed": counters.failures,
            "concurrency": concurrency,
            "seconds": seconds,
            "throughput": self.calls / seconds if seconds > 0 else 0.0,
            "latency": latency,
            "histogram": [{"le": bound, "count": count} for bound, count in _buckets(histogram)],
            "errors": errors,
        }


def _buckets(histogram: Histogram) -> Iterator[tuple[float, int]]:
    """`(upper bound, count)` from the first non-empty bucket to the last (not cumulative)."""
    filled = [i for i, count in enumerate(histogram.counts) if count]
    if not filled:
        return
    bounds = (*histogram.bounds, math.inf)
    for i in range(filled[0], filled[-1] + 1):
        yield bounds[i], histogram.counts[i]


def format_seconds(seconds: float) -> str:
    """`850 µs`, `12.3 ms`, `1.5 s`: at most three significant digits, in the unit that fits."""
    if seconds == math.inf:
        return "+Inf"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def histogram_lines(buckets: Sequence[dict[str, Any]], width: int = _BAR_WIDTH) -> list[str]:
    """One text line per bucket: `<= 500 µs  ████████        412  41.2%`, bars scaled to the
    fullest bucket (`width` characters)."""
    if not buckets:
        return []
    total = sum(b["count"] for b in buckets)
    fullest = max(b["count"] for b in buckets)
    labels = [f"<= {format_seconds(b['le'])}" for b in buckets]
    label_width = max(map(len, labels))
    count_width = len(str(fullest))
    lines = []
    for label, bucket in zip(labels, buckets, strict=True):
        count = bucket["count"]
        bar = "█" * max(round(width * count / fullest), 1 if count else 0)
        lines.append(f"{label:<{label_width}}  {bar:<{width}}  {count:>{count_width}}  {100 * count / total:5.1f}%")
    return lines


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    name: str
    request: Any
    calls: int | None
    duration: float | None
    concurrency: int
    warmup: int


async def _run(manager: Any, plan: _Plan, recorder: Recorder, progress: _Progress | None) -> float:
    """Warm up, then make the measured calls; return the seconds the measured calls took."""
    left = 0  # calls still to start, in a counted run

    async def worker(deadline: float | None, measured: bool) -> None:
        nonlocal left
        while True:
            if deadline is None:
                if left <= 0:
                    return
                left -= 1
            elif time.monotonic() >= deadline:
                return
            started = time.perf_counter_ns()
            error: PluginError | None = None
            try:
                await manager.execute(plan.name, plan.request)
            except PluginError as exc:
                error = exc
            if measured:
                recorder.record(time.perf_counter_ns() - started, error)
                if progress is not None:
                    progress.advance()

    if plan.warmup:
        left = plan.warmup
        await asyncio.gather(*(worker(None, False) for _ in range(min(plan.concurrency, plan.warmup))))
    if progress is not None:
        progress.start()
    started = time.perf_counter()
    if plan.calls is not None:
        left = plan.calls
        await asyncio.gather(*(worker(None, True) for _ in range(min(plan.concurrency, plan.calls))))
    else:
        assert plan.duration is not None
        deadline = time.monotonic() + plan.duration
        await asyncio.gather(*(worker(deadline, True) for _ in range(plan.concurrency)))
    return time.perf_counter() - started


class _Progress:
    """A rich progress bar on stderr: calls done of N (or, with a duration, calls so far)."""

    def __init__(self, plan: _Plan, *, force: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        out = Console(highlight=False, stderr=True, force_terminal=True) if force else console(stderr=True)
        self._progress = Progress(
            TextColumn("bench {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
        )
        self._task = self._progress.add_task(plan.name, total=plan.calls)

    def start(self) -> None:
        self._progress.start()

    def advance(self) -> None:
        self._progress.advance(self._task, 1)

    def stop(self) -> None:
        self._progress.stop()


def _print_summary(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    latency = data["latency"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("plugin", data["plugin"])
    head.add_row("calls", f"{data['calls']} ({data['succeeded']} ok, {data['failed']} failed)")
    head.add_row("concurrency", str(data["concurrency"]))
    head.add_row("time", f"{data['seconds']:.3f} s")
    head.add_row("throughput", f"{data['throughput']:.1f} calls/s")
    if data["calls"]:
        quantiles = "  ".join(f"{name} {format_seconds(latency[name])}" for name, _ in QUANTILES)
        sampled = "" if latency["exact"] else f" (from a sample of {RESERVOIR_SIZE} calls)"
        head.add_row("latency", f"{quantiles}  max {format_seconds(latency['max'])}{sampled}")
    out.print(head)
    lines = histogram_lines(data["histogram"], width=max(min(_BAR_WIDTH, out.width - 34), 5))
    if lines:
        out.print()
        out.print("latency histogram (all finished calls):", style="bold")
        for line in lines:
            out.print(line, markup=False)
    if data["errors"]:
        table = Table(title="errors by code", title_justify="left", expand=False)
        for column in ("code", "name", "count", "first message"):
            table.add_column(column, overflow="fold", justify="right" if column in ("code", "count") else "left")
        for error in data["errors"]:
            table.add_row(str(error["code"]), error["name"], str(error["count"]), error["message"])
        out.print()
        out.print(table)


@click.command("bench", context_settings={"ignore_unknown_options": True})
@click.argument("target", nargs=-1, type=click.UNPROCESSED, metavar="CONFIG NAME | --exec -- CMD [ARGS]...")
@click.option(
    "--exec", "exec_mode", is_flag=True, help="Benchmark the plugin the command CMD... starts (no config file)."
)
@click.option("--data", "data", default="{}", show_default=True, help="The request: JSON, @file, or - for stdin.")
@click.option(
    "-n", "--calls", type=POSITIVE_INT, default=None, help=f"Calls to make in all [default: {DEFAULT_CALLS}]."
)
@click.option("--duration", type=POSITIVE_FLOAT, default=None, help="Call for this many seconds instead of -n calls.")
@click.option("-c", "--concurrency", type=POSITIVE_INT, default=1, show_default=True, help="Calls in flight at once.")
@click.option(
    "--warmup", type=click.IntRange(min=0), default=0, show_default=True, help="Calls made first, not counted."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr [default: when stderr is a terminal].",
)
@JSON_OPTION
def bench_command(
    *,
    target: tuple[str, ...],
    exec_mode: bool,
    data: str,
    calls: int | None,
    duration: float | None,
    concurrency: int,
    warmup: int,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Call a plugin N times, C at once, and report throughput and latency.

    \b
      plugwire bench plugins.yaml text-stats --data '{"text": "Hi."}' -n 2000 -c 8
      plugwire bench --exec --data '{"text": "Hi."}' -- python text_stats.py

    Latency is measured around each call through the host (policies included), for
    succeeded and failed calls alike. Exit status 1 when any call failed.
    """
    if calls is not None and duration is not None:
        raise click.UsageError("give either -n/--calls or --duration, not both")
    request = read_data(data)
    from ._host import EXEC_NAME, exec_config

    if exec_mode:
        if not target:
            raise click.UsageError(
                "--exec needs the plugin's command: plugwire bench --exec [OPTIONS] -- CMD [ARGS]..."
            )
        config, name = exec_config(target), EXEC_NAME
    else:
        if len(target) != 2:  # CONFIG and NAME
            raise click.UsageError("expected CONFIG NAME (or --exec -- CMD [ARGS]...)")
        config, name = load_config(target[0]), target[1]
    plan = _Plan(
        name=name,
        request=request,
        calls=None if duration is not None else (calls or DEFAULT_CALLS),
        duration=duration,
        concurrency=concurrency,
        warmup=warmup,
    )
    show = console(stderr=True).is_terminal if progress is None else progress
    summary = asyncio.run(_bench(config, plan, show_progress=show, force=progress is True))
    if as_json:
        print_json(summary)
    else:
        _print_summary(summary)
    raise SystemExit(EXIT_FAILED if summary["failed"] else EXIT_OK)


async def _bench(config: Any, plan: _Plan, *, show_progress: bool, force: bool) -> dict[str, Any]:
    from ._host import open_host

    recorder = Recorder(keep=plan.calls if plan.duration is None else None)
    async with open_host(config) as manager:
        try:
            manager.get_plugin(plan.name)
        except PluginError as exc:
            known = ", ".join(sorted(manager.list_plugins())) or "none"
            fail(f"[{exc.code} {code_name(exc.code)}] {exc.message}; registered: {known}")
        bar = _Progress(plan, force=force) if show_progress else None
        try:
            seconds = await _run(manager, plan, recorder, bar)
        finally:
            if bar is not None:
                with contextlib.suppress(Exception):
                    bar.stop()
    return recorder.summary(plugin=plan.name, concurrency=plan.concurrency, seconds=seconds)
