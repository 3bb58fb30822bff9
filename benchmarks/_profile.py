"""cProfile a case's candidate and condense the profile into its largest costs.

Profiling runs after a case's measured rounds, so it never disturbs the numbers. It sees the
host process only: time a plugin spends in its own process shows up as the host waiting
(`select`/`epoll` or a blocking read).
"""

from __future__ import annotations

import cProfile
import pstats
import sysconfig
import time
from pathlib import Path
from typing import Any

from ._model import Op

__all__ = ["condense", "profile_op", "short_location"]

# Frames that wrap everything (the driver loop below, the event loop's plumbing, the case's own
# glue): they would top every list by cumulative time and say nothing about where costs lie.
_WRAPPER_FILES = ("/benchmarks/", "asyncio/base_events.py", "asyncio/events.py", "asyncio/runners.py")
_STDLIB = sysconfig.get_paths()["stdlib"].rstrip("/") + "/"
_WRAPPER_FUNCTIONS = ("<method 'run' of '_contextvars.Context' objects>", "<built-in method builtins.exec>")


async def profile_op(op: Op, is_async: bool, per_call: int, seconds: float, path: Path) -> dict[str, Any]:
    """Run `op` under cProfile for about `seconds`, write the profile to `path`, return its summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler = cProfile.Profile()
    ops = 0
    start = time.perf_counter()
    profiler.enable()
    try:
        while time.perf_counter() - start < seconds or ops == 0:
            result = op()
            if is_async:
                await result
            ops += per_call
    finally:
        profiler.disable()
    total = time.perf_counter() - start
    profiler.dump_stats(path)
    summary = condense(pstats.Stats(profiler), ops=ops, total_s=total)
    summary["path"] = str(path)
    return summary


def condense(stats: pstats.Stats, *, ops: int, total_s: float, top: int = 12) -> dict[str, Any]:
    """The top functions by cumulative and by self time, per op, wrappers left out."""
    entries: list[dict[str, Any]] = []
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, function), (_cc, calls, self_time, cumulative, _callers) in raw.items():
        if any(part in filename for part in _WRAPPER_FILES) or function in _WRAPPER_FUNCTIONS:
            continue
        entries.append(
            {
                "function": short_location(filename, line, function),
                "calls_per_op": calls / ops,
                "cumulative_us_per_op": cumulative / ops * 1e6,
                "self_us_per_op": self_time / ops * 1e6,
                "share": cumulative / total_s if total_s > 0 else 0.0,
            }
        )
    by_cumulative = sorted(entries, key=lambda e: e["cumulative_us_per_op"], reverse=True)[:top]
    by_self = sorted(entries, key=lambda e: e["self_us_per_op"], reverse=True)[:top]
    return {"ops": ops, "total_s": total_s, "top_cumulative": by_cumulative, "top_self": by_self}


def short_location(filename: str, line: int, function: str) -> str:
    """`plugwire/_manager.py:243 execute`, `asyncio/timeouts.py:90 __aexit__`, or a builtin's name."""
    if filename == "~":  # a C function: cProfile gives no file
        return function
    for marker in ("/site-packages/", "/src/", _STDLIB):
        if marker in filename:
            filename = filename.rsplit(marker, 1)[1]
            break
    else:
        filename = Path(filename).name
    return f"{filename}:{line} {function}"
