"""`python -m benchmarks.instructions`: counting instructions per call with valgrind.

The counts are only useful if the difference of two runs is what the extra calls cost:
start-up, imports and set-up must cancel out, so the count must grow in proportion to the
batches run. Checked on the smallest workload (asyncio alone, no child process)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.instructions import BATCH, WORKLOADS, _count

ROOT = Path(__file__).resolve().parents[2]
VALGRIND = shutil.which("valgrind")
needs_valgrind = pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed (apt install valgrind)")


@needs_valgrind
@pytest.mark.timeout(300)
def test_the_count_grows_in_proportion_to_the_calls(tmp_path: Path) -> None:
    assert VALGRIND is not None
    wakeups = next(w for w in WORKLOADS if w.name == "wakeups.x64")
    counts = {batches: _count(VALGRIND, wakeups, "host", batches, tmp_path) for batches in (0, 1, 3)}
    first = (counts[1] - counts[0]) / BATCH
    next_two = (counts[3] - counts[1]) / (2 * BATCH)
    assert first > 1000  # each call awaits a future: far more than a few instructions
    assert abs(first - next_two) / next_two < 0.05, counts


def test_without_valgrind_it_says_what_is_missing_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert "needs valgrind" in done.stderr


def test_unknown_workloads_are_refused_by_name(tmp_path: Path) -> None:
    if VALGRIND is None:
        pytest.skip("the workloads are checked after valgrind is found")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions", "--only", "plugwire.x65"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        timeout=60,
    )
    assert done.returncode == 2
    assert "plugwire.x65" in done.stderr
    assert "plugwire.x64" in done.stderr  # the choices are listed
