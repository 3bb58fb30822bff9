"""Command line: `python -m benchmarks [--quick] [--pin ...] [--only ...] [--profile] [--docs PATH]`.

`python -m benchmarks docs` regenerates `docs/performance.md` from an existing results file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from ._docs import render_docs
from ._machine import machine_facts
from ._model import PIN_MODES, REGISTRY, Case, Env, PinMode
from ._pinning import restore
from ._report import load_results, render_table, row_to_json, write_results
from ._runner import Row, Settings, run_cases

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
PROFILES = ROOT / "profiles"


def _pin_modes(text: str) -> tuple[PinMode, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in PIN_MODES]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"pin modes are {', '.join(PIN_MODES)} (comma-separated), got {text!r}")
    return cast(tuple[PinMode, ...], modes)


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds per case: check every case runs")
    parser.add_argument(
        "--pin",
        type=_pin_modes,
        default=None,
        help="force CPU placement for every case: same, split, none, or a list (same,none); "
        "default: each case's own (latency pinned to one CPU and also unpinned)",
    )
    parser.add_argument("--only", action="append", default=[], help="run cases whose name contains this (repeatable)")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds per case")
    parser.add_argument(
        "--instances", type=int, default=None, help="fresh set-ups of each case's sides, rounds shared among them"
    )
    parser.add_argument("--batch-ms", type=float, default=None, help="target milliseconds per batch")
    parser.add_argument("--profile", action="store_true", help="cProfile each case's candidate into --profile-dir")
    parser.add_argument("--profile-dir", type=Path, default=PROFILES)
    parser.add_argument("--results", type=Path, default=None, help="results JSON (default results/latest.json)")
    parser.add_argument("--docs", type=Path, default=None, help="also regenerate this performance page")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    return parser


def _docs_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks docs", description="regenerate the performance page")
    parser.add_argument("--results", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--out", type=Path, default=ROOT.parent / "docs" / "performance.md")
    args = parser.parse_args(argv)
    document = load_results(args.results)
    args.out.write_text(render_docs(document, source=_display(args.results)))
    print(f"wrote {args.out}")
    return 0


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT.parent))
    except ValueError:
        return str(path)


def _settings(args: argparse.Namespace) -> Settings:
    base = Settings.quick_mode(args.pin) if args.quick else Settings(pin=args.pin)
    changes: dict[str, Any] = {}
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    if args.instances is not None:
        if args.instances < 1:
            raise SystemExit("--instances must be at least 1")
        changes["instances"] = args.instances
    if args.batch_ms is not None:
        changes["batch_s"] = args.batch_ms / 1000
    if args.profile and not args.quick:
        changes["profile_dir"] = args.profile_dir
    fields = {name: getattr(base, name) for name in Settings.__dataclass_fields__}
    return Settings(**{**fields, **changes})


def _pinning_text(settings: Settings) -> str:
    if settings.pin:
        return f"forced `{','.join(settings.pin)}` for every case"
    if settings.quick:
        return "each case's default placement only (quick)"
    return "each case's own (placement column); cases pinned `same` (host and children on one CPU) run again unpinned"


async def _measure(cases: Sequence[Case], settings: Settings, env: Env) -> tuple[list[Row], dict[str, Any]]:
    facts = machine_facts(asyncio.get_running_loop())
    rows = await run_cases(cases, settings, env, progress=lambda line: print(line, flush=True))
    return rows, facts


def _document(
    rows: Sequence[Row], facts: dict[str, Any], settings: Settings, started: dt.datetime, took: float
) -> dict[str, Any]:
    profiles: dict[str, Any] = {}
    for row in rows:
        if row.profile is not None:
            profiles.setdefault(f"{row.case} [{row.pin}]", {"candidate": row.candidate_label, **row.profile})
    return {
        "mode": "quick" if settings.quick else "full",
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": took,
        "machine": {**facts, "pinning": _pinning_text(settings)},
        "settings": {
            "rounds": settings.rounds,
            "instances": settings.instances,
            "warmup_s": settings.warmup_s,
            "batch_s": settings.batch_s,
            "pin": list(settings.pin) if settings.pin else None,
            "pinning": _pinning_text(settings),
        },
        "rows": [row_to_json(row) for row in rows],
        "profiles": profiles,
    }


def _quick_check(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Quick mode judges no timing: it only checks that every row produced numbers."""
    problems = []
    for row in rows:
        if "median" not in row["candidate"] or "median" not in row["baseline"] or row["ratio"] is None:
            problems.append(f"{row['case']} [{row['pin']}]: {row['verdict']}: {row['detail'] or 'no numbers'}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["docs"]:
        return _docs_command(argv[1:])
    args = _run_parser().parse_args(argv)
    from . import cases as _cases  # noqa: F401 - importing registers every case

    selected = [c for c in REGISTRY.values() if not args.only or any(part in c.name for part in args.only)]
    if args.list:
        for item in selected:
            print(f"{item.name:40} {item.kind.label:10} pin {'+'.join(item.pin_modes(None))}")
        return 0
    if not selected:
        print(f"no case matches {args.only}", file=sys.stderr)
        return 2
    settings = _settings(args)
    started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="plugwire-bench-") as scratch:
            env = Env(quick=settings.quick, workdir=Path(scratch), child_env=dict(os.environ))
            rows, facts = asyncio.run(_measure(selected, settings, env))
    finally:
        restore()
    document = _document(rows, facts, settings, started, time.perf_counter() - clock)
    print()
    print(render_table(document["rows"]))
    results = args.results or RESULTS / ("quick.json" if settings.quick else "latest.json")
    write_results(results, document)
    print(f"\nresults: {_display(results)}")
    if settings.quick:
        problems = _quick_check(document["rows"])
        for problem in problems:
            print(f"bench-quick: {problem}", file=sys.stderr)
        print(f"bench-quick: {len(document['rows'])} rows, {len(problems)} without numbers (timings not judged)")
        return 1 if problems else 0
    if args.docs is not None:
        args.docs.write_text(render_docs(document, source=_display(results)))
        print(f"docs: {_display(args.docs)}")
    return 1 if any(row["verdict"] in {"error", "skipped"} for row in document["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
