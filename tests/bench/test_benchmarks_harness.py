"""The benchmark harness itself: statistics, verdicts, interleaving and the docs generator.

Synthetic numbers only; nothing here asserts how long anything took (timings are judged by
`make bench`, never by the test suite).
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import math
import os
import pstats
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import _pin_modes, _quick_check
from benchmarks._docs import render_docs
from benchmarks._model import REGISTRY, Case, Env, Kind, Op, Side, Verdict, Versus, at_least, at_most, register
from benchmarks._pinning import ORIGINAL_CPUS, Placement, descendants
from benchmarks._profile import condense, short_location
from benchmarks._report import format_value, render_table, row_to_json
from benchmarks._runner import Settings, run_case
from benchmarks._stats import Summary, judge, percentile, summarize

# ------------------------------------------------------------------ statistics


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile(list(map(float, range(101))), 99) == 99.0
    assert percentile([10.0, 20.0], 99) == pytest.approx(19.9)
    assert percentile([7.0], 1) == 7.0


@pytest.mark.parametrize(("samples", "q"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_percentile_refuses_empty_samples_and_out_of_range_quantiles(samples: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(samples, q)


def test_latency_tail_is_the_slow_end_and_throughput_tail_the_low_rate_end() -> None:
    samples = [float(v) for v in range(1, 201)]
    latency = summarize(samples, Kind.LATENCY)
    throughput = summarize(samples, Kind.THROUGHPUT)
    assert latency.median == throughput.median == 100.5
    assert latency.p99 == pytest.approx(percentile(samples, 99))
    assert throughput.p99 == pytest.approx(percentile(samples, 1))
    assert (latency.best, latency.worst) == (1.0, 200.0)
    assert (throughput.best, throughput.worst) == (200.0, 1.0)
    assert latency.n == 200
    assert latency.mean == pytest.approx(100.5)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_summary_refuses_samples_that_are_not_finite_positive_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match="finite positive"):
        summarize([1.0, bad], Kind.LATENCY)


# ------------------------------------------------------------ ratio and verdict


def _summary(median: float, p99: float | None = None) -> Summary:
    tail = median if p99 is None else p99
    return Summary(median=median, p99=tail, mean=median, best=median, worst=tail, n=1)


def test_latency_target_is_met_up_to_and_including_the_bound() -> None:
    ratio, tail_ratio, verdict = judge(_summary(15.0, 30.0), _summary(10.0, 12.0), at_most(1.5))
    assert ratio == 1.5
    assert tail_ratio == 2.5
    assert verdict is Verdict.MET
    assert judge(_summary(15.1), _summary(10.0), at_most(1.5))[2] is Verdict.NOT_MET


def test_throughput_target_needs_the_candidate_rate_at_least_that_share_of_the_baseline() -> None:
    assert judge(_summary(500.0), _summary(1000.0), at_least(0.5))[2] is Verdict.MET
    assert judge(_summary(499.0), _summary(1000.0), at_least(0.5))[2] is Verdict.NOT_MET


def test_row_without_target_is_info_whatever_the_ratio() -> None:
    ratio, _, verdict = judge(_summary(100.0), _summary(1.0), None)
    assert ratio == 100.0
    assert verdict is Verdict.INFO


def test_target_text_reads_as_a_bound_on_the_ratio() -> None:
    assert at_most(2.5).text == "≤ 2.5x"
    assert at_least(0.8).text == "≥ 0.8x"


# ------------------------------------------------------------------- the model


def _noop_factory(env: Env) -> Any:
    @asynccontextmanager
    async def factory() -> AsyncIterator[Op]:
        yield lambda: None

    return factory()


_NOOP = Side("noop", _noop_factory)


def test_latency_cases_run_pinned_then_unpinned_unless_placement_is_forced() -> None:
    pinned = Case("t.pinned", _NOOP, (Versus(_NOOP),))
    assert pinned.pin_modes(None) == ("same", "none")
    assert pinned.pin_modes(("split",)) == ("split",)
    assert Case("t.scaling", _NOOP, (Versus(_NOOP),), pin="none").pin_modes(None) == ("none",)
    assert Case("t.once", _NOOP, (Versus(_NOOP),), also_unpinned=False).pin_modes(None) == ("same",)


def test_a_case_needs_a_baseline_and_a_unique_name() -> None:
    with pytest.raises(ValueError, match="baseline"):
        Case("t.lonely", _NOOP, ())
    name = "t.registered-once"
    register(Case(name, _NOOP, (Versus(_NOOP),)))
    try:
        with pytest.raises(ValueError, match="twice"):
            register(Case(name, _NOOP, (Versus(_NOOP),)))
    finally:
        del REGISTRY[name]


def test_every_shipped_case_has_a_unique_name_and_a_baseline() -> None:
    import benchmarks.cases  # noqa: F401 - registers the shipped cases

    assert REGISTRY
    for name, item in REGISTRY.items():
        assert item.name == name
        assert item.versus


# --------------------------------------------------------------------- pinning


def test_placements_put_host_and_children_where_the_mode_says() -> None:
    assert Placement.for_mode("same", [3, 1]) == Placement("same", frozenset({1}), frozenset({1}))
    assert Placement.for_mode("split", [0, 1]) == Placement("split", frozenset({0}), frozenset({1}))
    assert Placement.for_mode("none", [0, 1]).children == frozenset({0, 1})
    with pytest.raises(ValueError, match="two CPUs"):
        Placement.for_mode("split", [0])


def test_descendants_are_found_through_every_generation_of_a_proc_tree(tmp_path: Path) -> None:
    # pid: (parent, command) -- command names may hold spaces and parentheses.
    tree = {10: (1, "host"), 11: (10, "plugin (a) b"), 12: (11, "grandchild"), 13: (1, "stranger"), 14: (10, "x")}
    for pid, (parent, command) in tree.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({command}) S {parent} {pid} 0 0\n")
    (tmp_path / "self").mkdir()
    assert sorted(descendants(10, tmp_path)) == [11, 12, 14]
    assert descendants(12, tmp_path) == []


def test_a_started_child_is_found_among_the_descendants_and_pinned_while_the_host_is_not() -> None:
    one = frozenset({min(ORIGINAL_CPUS)})
    host_before = os.sched_getaffinity(0)
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in descendants(os.getpid())
        # Only our child: other tests' processes are none of this test's business.
        assert Placement("split", frozenset(ORIGINAL_CPUS), one).pin_children([child.pid]) == 1
        assert os.sched_getaffinity(child.pid) == one
        assert os.sched_getaffinity(0) == host_before
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)


# ---------------------------------------------------------------------- runner


class _Recorder:
    """Fake sides that log every op call and their teardown, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closed: list[str] = []

    def side(self, label: str, *, fail_setup: bool = False, value: object = None, is_async: bool = True) -> Side:
        @asynccontextmanager
        async def factory(env: Env) -> AsyncIterator[Op]:
            if fail_setup:
                raise RuntimeError(f"{label} cannot start")
            try:
                if is_async:

                    async def op() -> object:
                        self.calls.append(label)
                        return value

                    yield op
                else:

                    def sync_op() -> object:
                        self.calls.append(label)
                        return value

                    yield sync_op
            finally:
                self.closed.append(label)

        return Side(label, factory)


def _runs(calls: list[str]) -> list[str]:
    """Consecutive repeats folded: [A, A, B, A] -> [A, B, A]."""
    return [label for i, label in enumerate(calls) if i == 0 or calls[i - 1] != label]


_SETTINGS = Settings(rounds=3, warmup_s=0.0, batch_s=0.0001, instances=1)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(quick=False, workdir=tmp_path, child_env={})


async def test_candidate_and_every_baseline_alternate_round_by_round(env: Env) -> None:
    recorder = _Recorder()
    candidate, first, second = recorder.side("A"), recorder.side("B", is_async=False), recorder.side("C")
    subject = Case("t.interleave", candidate, (Versus(first, at_most(100.0)), Versus(second)))
    rows = await run_case(subject, "none", _SETTINGS, env)
    # Warm-up visits each side once, then each of the 3 rounds runs A, B, C in turn.
    assert _runs(recorder.calls) == ["A", "B", "C"] * 4
    assert sorted(recorder.closed) == ["A", "B", "C"]
    assert [(row.baseline_label, row.verdict) for row in rows] == [("B", Verdict.MET), ("C", Verdict.INFO)]
    assert all(row.candidate is not None and row.candidate.n >= 3 for row in rows)
    assert rows[0].rounds == 3


async def test_each_instance_sets_the_sides_up_afresh_and_the_rounds_are_shared_among_them(env: Env) -> None:
    recorder = _Recorder()
    subject = Case("t.instances", recorder.side("A"), (Versus(recorder.side("B")),))
    settings = Settings(rounds=5, warmup_s=0.0, batch_s=0.0001, instances=2)
    rows = await run_case(subject, "none", settings, env)
    # Set-up 1: warm-up, then 3 rounds; set-up 2: warm-up, then 2 rounds; each torn down after.
    assert _runs(recorder.calls) == ["A", "B"] * 4 + ["A", "B"] * 3
    assert sorted(recorder.closed) == ["A", "A", "B", "B"]
    assert rows[0].rounds == 5
    assert rows[0].candidate is not None
    assert rows[0].candidate.n >= 5


async def test_a_side_that_fails_to_start_gives_an_error_row_and_the_others_are_torn_down(env: Env) -> None:
    recorder = _Recorder()
    subject = Case("t.broken", recorder.side("A"), (Versus(recorder.side("B", fail_setup=True), at_most(2.0)),))
    rows = await run_case(subject, "none", _SETTINGS, env)
    assert [row.verdict for row in rows] == [Verdict.ERROR]
    assert "B cannot start" in rows[0].detail
    assert recorder.closed == ["A"]
    assert recorder.calls == []


async def test_a_case_whose_module_is_missing_is_skipped_with_the_reason(env: Env) -> None:
    recorder = _Recorder()
    needy = Side("needy", recorder.side("needy").factory, requires=("no_such_module_for_bench",))
    rows = await run_case(Case("t.needy", needy, (Versus(recorder.side("B")),)), "none", _SETTINGS, env)
    assert [row.verdict for row in rows] == [Verdict.SKIPPED]
    assert "no_such_module_for_bench" in rows[0].detail
    assert recorder.calls == []


async def test_memory_cases_use_what_the_op_returns_and_refuse_a_non_number(env: Env) -> None:
    recorder = _Recorder()
    good = Case(
        "t.memory",
        recorder.side("big", value=3 * 2**20),
        (Versus(recorder.side("small", value=2**20), at_most(2.0)),),
        kind=Kind.MEMORY,
    )
    rows = await run_case(good, "none", _SETTINGS, env)
    assert rows[0].ratio == 3.0
    assert rows[0].verdict is Verdict.NOT_MET
    bad = Case(
        "t.memory-bad",
        recorder.side("text", value="lots"),
        (Versus(recorder.side("small", value=1)),),
        kind=Kind.MEMORY,
    )
    rows = await run_case(bad, "none", _SETTINGS, env)
    assert rows[0].verdict is Verdict.ERROR
    assert "positive number of bytes" in rows[0].detail


async def test_quick_mode_reports_numbers_but_judges_no_target(env: Env) -> None:
    recorder = _Recorder()
    subject = Case("t.quick", recorder.side("A"), (Versus(recorder.side("B"), at_most(1000.0)),))
    rows = await run_case(subject, "none", Settings.quick_mode(), env)
    assert rows[0].verdict is Verdict.UNJUDGED
    assert rows[0].ratio is not None
    assert _quick_check([row_to_json(row) for row in rows]) == []


def test_pin_option_takes_one_mode_or_a_comma_separated_list_of_known_modes() -> None:
    assert _pin_modes("same") == ("same",)
    assert _pin_modes("same, none") == ("same", "none")
    for bad in ("", "both", "same,everywhere"):
        with pytest.raises(argparse.ArgumentTypeError):
            _pin_modes(bad)


def test_quick_check_names_every_row_that_produced_no_numbers() -> None:
    empty = {"case": "x.y", "pin": "same", "candidate": {"label": "a"}, "baseline": {"label": "b"}}
    rows = [{**empty, "ratio": None, "verdict": "error", "detail": "boom"}]
    assert _quick_check(rows) == ["x.y [same]: error: boom"]


# ---------------------------------------------------------------- report, docs


def test_values_are_printed_in_the_unit_people_read() -> None:
    assert format_value("latency", 12.345e-6) == "12.3 µs"
    assert format_value("latency", 0.0025) == "2.50 ms"
    assert format_value("latency", 2.0) == "2.00 s"
    assert format_value("throughput", 25_000) == "25.0k ops/s"
    assert format_value("throughput", 2_500_000) == "2.50M ops/s"
    assert format_value("memory", 3 * 2**20) == "3.0 MiB"
    assert format_value("latency", None) == "—"


def _row(case: str, verdict: str, ratio: float | None, target: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    numbers = {"median": 20e-6, "p99": 40e-6} if ratio is not None else {}
    baseline = {"median": 20e-6 / ratio, "p99": 30e-6} if ratio is not None else {}
    return {
        "case": case,
        "pin": "same",
        "kind": "latency",
        "unit": "s",
        "candidate": {"label": "plugwire call", **numbers},
        "baseline": {"label": "bare floor", **baseline},
        "ratio": ratio,
        "tail_ratio": ratio,
        "target": target,
        "verdict": verdict,
        "rounds": 25,
        "batches": [100, 300],
        "detail": extra.get("detail", ""),
        "note": extra.get("note", ""),
    }


_LE_15 = {"op": "<=", "value": 1.5, "text": "≤ 1.5x"}


def _document(rows: list[dict[str, Any]], profiles: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema": 1,
        "mode": "full",
        "started": "2026-11-25 19:00 UTC",
        "duration_s": 321.0,
        "machine": {
            "cpu_count": 2,
            "cpu_model": "AMD EPYC",
            "python": "CPython 3.11.7",
            "platform": "Linux-6.1",
            "event_loop": "asyncio.unix_events._UnixSelectorEventLoop",
            "load_average_at_start": [1.25, 1.0, 0.5],
        },
        "settings": {"rounds": 25, "pinning": "per case"},
        "rows": rows,
        "profiles": profiles or {},
    }


def test_docs_hold_the_run_date_machine_table_and_every_unmet_target_with_its_ratio() -> None:
    rows = [
        _row("subprocess.small", "NOT MET", 1.83, _LE_15, note="issue 3: full execute path"),
        _row("inprocess.execute", "met", 1.2, _LE_15),
        _row("peers.rpyc", "info", 9.0, None),
        _row("grpc.sequential", "error", None, _LE_15, detail="RuntimeError: no server"),
    ]
    page = render_docs(_document(rows))
    assert page.startswith("# Performance\n")
    assert "Do not edit" in page
    assert "2026-11-25 19:00 UTC" in page
    assert "2 CPUs (AMD EPYC), CPython 3.11.7, event loop _UnixSelectorEventLoop" in page
    assert "1-minute load average at start 1.25" in page
    assert "| `subprocess.small` | same | plugwire call: 20.0 µs (p99 40.0 µs) |" in page
    unmet = page.split("## Targets not met")[1].split("##")[0]
    assert "`subprocess.small` [same]" in unmet
    assert "**1.83x**, target ≤ 1.5x" in unmet
    assert "inprocess.execute" not in unmet
    assert "peers.rpyc" not in unmet
    assert "`grpc.sequential` [same] produced no numbers (error: RuntimeError: no server)" in unmet
    assert "- `subprocess.small`: issue 3: full execute path" in page
    assert "make bench PROFILE=1" in page.split("## Largest remaining costs")[1]


def test_docs_say_plainly_when_every_target_was_met() -> None:
    page = render_docs(_document([_row("inprocess.execute", "met", 1.2, _LE_15), _row("p", "info", 3.0, None)]))
    assert "None: all 1 targeted rows of this run met their target." in page


def test_docs_list_the_largest_costs_from_the_profiles_of_plugwire_candidates() -> None:
    entry = {"function": "plugwire/_manager.py:243 execute", "cumulative_us_per_op": 7.5}
    entry |= {"self_us_per_op": 1.25, "calls_per_op": 1.0}
    hot = {"function": "uuid.py:721 uuid4", "cumulative_us_per_op": 2.0, "self_us_per_op": 0.75, "calls_per_op": 1.0}
    peer = {"function": "rpyc/core/protocol.py:700 sync_request", "cumulative_us_per_op": 50.0}
    peer |= {"self_us_per_op": 1.0, "calls_per_op": 1.0}
    profiles = {
        "inprocess.execute [same]": {
            "candidate": "manager.execute",
            "ops": 5000,
            "top_cumulative": [entry, hot],
            "top_self": [entry, hot],
        },
        "peers.rpyc [same]": {"candidate": "rpyc", "ops": 900, "top_cumulative": [peer], "top_self": [peer]},
    }
    page = render_docs(_document([_row("inprocess.execute", "met", 1.2, _LE_15)], profiles))
    costs = page.split("## Largest remaining costs")[1]
    assert "### `inprocess.execute [same]`: manager.execute (5000 ops profiled)" in costs
    assert "| `plugwire/_manager.py:243 execute` | 7.50 | 1.25 | 1.00 |" in costs
    assert "Largest self time (µs/op): `plugwire/_manager.py:243 execute` 1.25, `uuid.py:721 uuid4` 0.75." in costs
    assert "(1 of 2 profiles)" in costs
    assert "sync_request" not in costs


def test_docs_are_never_generated_from_a_quick_run() -> None:
    document = _document([]) | {"mode": "quick"}
    with pytest.raises(ValueError, match="full run"):
        render_docs(document)


def test_printed_table_has_one_line_per_row_under_the_six_columns() -> None:
    table = render_table([_row("a.case", "met", 1.2, _LE_15), _row("b.case", "skipped", None, None, detail="x")])
    lines = table.splitlines()
    assert lines[0].split() == ["case", "candidate", "baseline", "ratio", "target", "verdict"]
    assert len(lines) == 4
    assert "1.20x" in lines[2]
    assert lines[3].endswith("skipped: x")


def _busy(work: Callable[[], object], n: int) -> None:
    for _ in range(n):
        work()


def test_profile_summary_names_the_costly_functions_per_op_and_leaves_the_harness_out() -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    _busy(lambda: sorted(range(200)), 50)
    percentile([1.0, 2.0], 50)  # a harness function: must not show up
    profiler.disable()
    summary = condense(pstats.Stats(profiler), ops=50, total_s=1.0)
    names = [entry["function"] for entry in summary["top_cumulative"]]
    assert any(name.endswith(" _busy") for name in names)
    busy = next(e for e in summary["top_cumulative"] if e["function"].endswith(" _busy"))
    assert busy["calls_per_op"] == pytest.approx(1 / 50)
    assert summary["ops"] == 50
    assert not [name for name in names if "percentile" in name]
    assert short_location("/x/src/plugwire/_manager.py", 243, "execute") == "plugwire/_manager.py:243 execute"
    assert short_location("~", 0, "<built-in method time.perf_counter>") == "<built-in method time.perf_counter>"


_ALLOCATOR_PROBE = """
import ctypes

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mapped_while_holding(size):
    block = bytes(size)
    mapped = libc.mallinfo2().hblkhd
    del block
    return mapped

before = mapped_while_holding(256 * 1024) - mapped_while_holding(1)
from benchmarks._runner import settle_allocator  # after: importing may free big blocks itself
settle_allocator()
after = mapped_while_holding(256 * 1024) - mapped_while_holding(1)
print(before, after)
"""


def _has_mallinfo2() -> bool:
    return hasattr(ctypes.CDLL(None), "mallinfo2")


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc's mallinfo2 (glibc 2.33+)")
def test_settling_the_allocator_stops_a_256k_read_buffer_from_costing_an_mmap() -> None:
    # In a fresh interpreter: asyncio's streams allocate 256 KiB per read, a fresh mapping each
    # time until glibc's mmap threshold has risen; the harness raises it before timing.
    root = Path(__file__).resolve().parents[2]
    # Without coverage in the probe: its start-up could free a big block and raise the
    # threshold before the first measurement.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    out = subprocess.run(
        [sys.executable, "-c", _ALLOCATOR_PROBE],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    before, after = (int(n) for n in out.stdout.split())
    assert before >= 256 * 1024  # the precondition: glibc's defaults map such a block on its own
    assert after == 0
