"""Instructions per call, counted by valgrind: a measure the machine's noise cannot move.

    PYTHONPATH=src python -m benchmarks.instructions [--only plugwire.x64,floor.x64] [--batches 1,5]

On these shared 2-vCPU machines two runs of the same code differ by 5-10% in time, so a
change worth 2% cannot be seen with a clock. The number of instructions a process executes
for the same work barely moves (about 0.2% run to run here), so each row below counts them with
valgrind's callgrind, one side of one workload in its own process: the host, or its child
(the plugin, the echo child) started under valgrind by a host that runs natively.

Each count is taken twice, after the same start-up and warm-up, with `N` and with `M` batches
of 1024 calls; `(count(M) - count(N)) / ((M - N) * 1024)` is what one call costs, start-up,
imports and set-up cancelling out. A process under valgrind runs about 50 times slower, so
the other side answers sooner than it would; calls still go out and come back in the same
batches (64 in flight: one write and one read per 64 calls), which is what the counts are
meant for: comparing two versions of the code, or a side with its floor. They are not times.

Workloads (`WORKLOADS`): plugwire's `manager.execute` on the subprocess echo plugin of the
benchmark cases (README defaults), 64 callers of 16 calls each (`x64`) or one call at a time
(`seq`); the asyncio floor (issue 3's baseline (a)) with the same in-flight counts; and
`wakeups.x64`: 64 callers each awaiting a future that is resolved with the others, no I/O at
all, what asyncio itself costs for 64 callers that wait for answers. `plain.x64`/`plain.seq`
are plugwire's workloads with every accelerator off (`PLUGWIRE_FAST_PATHS=0`, in the host and
its plugin): the plain reference path beside the fast one. `PLUGWIRE_FAST_PATHS` set to a list
of accelerators (`docs/hot-path.md`) applies to the `plugwire.*` workloads too, to count what one
accelerator buys.

Needs valgrind (`apt install valgrind`); without it the command says so and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._model import Env

BATCH = 1024
"""Calls per batch."""
IN_FLIGHT = 64
CALLS_EACH = BATCH // IN_FLIGHT

Side = Literal["host", "child"]


@dataclass(frozen=True)
class Workload:
    """What one row measures: `system` ("plugwire", "floor", "wakeups") and `mode` ("x64", "seq")."""

    system: str
    mode: str
    sides: tuple[Side, ...]

    @property
    def name(self) -> str:
        return f"{self.system}.{self.mode}"


WORKLOADS = (  # each floor before the workload compared with it
    Workload("floor", "x64", ("host", "child")),
    Workload("wakeups", "x64", ("host",)),
    Workload("plugwire", "x64", ("host", "child")),
    Workload("floor", "seq", ("host", "child")),
    Workload("plugwire", "seq", ("host", "child")),
    Workload("plain", "x64", ("host", "child")),
    Workload("plain", "seq", ("host", "child")),
)
FLOOR_OF = {"plugwire.x64": "floor.x64", "plugwire.seq": "floor.seq"}


# --------------------------------------------------------------- measured process
Batch = Callable[[], Awaitable[None]]


def _env() -> Env:
    """The harness's `Env`: this process's variables (so PYTHONPATH reaches the children)."""
    return Env(quick=False, workdir=Path(tempfile.gettempdir()), child_env=dict(os.environ))


@asynccontextmanager
async def _plugwire(mode: str, wrapper: Sequence[str]) -> AsyncIterator[Batch]:
    import msgspec

    from .cases._plugin import echo_request, plugin_config, running_manager

    config = plugin_config("echo")
    if wrapper:  # a plugin under valgrind starts and answers far slower
        slow = msgspec.structs.replace(config.connection, connection_timeout=300.0, request_timeout=300.0)
        config = msgspec.structs.replace(config, connection=slow)
    request = echo_request()
    async with running_manager(_env(), config, wrapper=wrapper) as manager:
        execute = manager.execute

        async def caller(calls: int) -> None:
            for _ in range(calls):
                await execute("echo", request)

        async def batch() -> None:
            if mode == "x64":
                await asyncio.gather(*(caller(CALLS_EACH) for _ in range(IN_FLIGHT)))
            else:
                await caller(BATCH)

        yield batch


@asynccontextmanager
async def _plain(mode: str, wrapper: Sequence[str]) -> AsyncIterator[Batch]:
    """plugwire with every accelerator off, in this process and (through the environment the
    host passes on) in its plugin."""
    from plugwire import _seam

    os.environ[_seam.ENV_SWITCH] = "0"
    _seam.use_fast_paths(False)  # (in case plugwire was imported before the variable was set)
    async with _plugwire(mode, wrapper) as batch:
        yield batch


@asynccontextmanager
async def _floor(mode: str, wrapper: Sequence[str]) -> AsyncIterator[Batch]:
    from .baselines.pipes import asyncio_pipes

    in_flight = IN_FLIGHT if mode == "x64" else 1
    async with asyncio_pipes(_env(), in_flight=in_flight, wrapper=wrapper) as op:

        async def batch() -> None:
            for _ in range(BATCH // in_flight):
                await op()

        yield batch


@asynccontextmanager
async def _wakeups(mode: str, wrapper: Sequence[str]) -> AsyncIterator[Batch]:
    from .baselines.waiting import answered_together

    call = answered_together(IN_FLIGHT)

    async def caller() -> None:
        for _ in range(CALLS_EACH):
            await call()

    async def batch() -> None:
        await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))

    yield batch


_SYSTEMS = {"plugwire": _plugwire, "plain": _plain, "floor": _floor, "wakeups": _wakeups}


async def _run(system: str, mode: str, batches: int, wrapper: Sequence[str]) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # children inherit it: one CPU, as pinned cases
    async with _SYSTEMS[system](mode, wrapper) as batch:
        for _ in range(2 + batches):  # two batches of warm-up
            await batch()


# ------------------------------------------------------------------------ driver
def _total(out_file: Path) -> int:
    """The instruction count in a callgrind output file."""
    for line in out_file.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"{out_file}: no instruction total (did the process exit normally?)")


def _count(valgrind: str, workload: Workload, side: Side, batches: int, scratch: Path) -> int:
    out_file = scratch / f"{workload.name}.{side}.{batches}.out"
    out_file.unlink(missing_ok=True)
    tool = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out_file}", "--trace-children=no"]
    command = [sys.executable, "-m", "benchmarks.instructions", "--run", workload.system, workload.mode, str(batches)]
    if side == "host":
        command = [*tool, *command]
    else:
        command += ["--wrap", json.dumps(tool)]
    # One hash seed for every run: with a random one, dict and set layouts differ between the
    # two runs whose difference is the answer, which moved it by up to ~1k instructions per call.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env=env)
    if done.returncode:
        raise RuntimeError(f"{workload.name} ({side}) failed:\n{done.stdout}{done.stderr[-3000:]}")
    return _total(out_file)


def per_call(valgrind: str, workload: Workload, side: Side, batches: tuple[int, int], scratch: Path) -> float:
    """Instructions per call of one side of `workload`: the difference of two counts."""
    low, high = batches
    return (_count(valgrind, workload, side, high, scratch) - _count(valgrind, workload, side, low, scratch)) / (
        (high - low) * BATCH
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. plugwire.x64,floor.x64")
    parser.add_argument("--batches", default="1,5", help="the two batch counts N,M (default 1,5)")
    parser.add_argument("--run", nargs=3, metavar=("SYSTEM", "MODE", "BATCHES"), help=argparse.SUPPRESS)
    parser.add_argument("--wrap", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        system, mode, count = args.run
        asyncio.run(_run(system, mode, int(count), json.loads(args.wrap) if args.wrap else []))
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("python -m benchmarks.instructions needs valgrind (apt install valgrind)", file=sys.stderr)
        return 2
    low, high = (int(n) for n in args.batches.split(","))
    if not 0 <= low < high:
        parser.error(f"--batches: two counts N < M, got {args.batches!r}")
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - {w.name for w in WORKLOADS}
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {', '.join(w.name for w in WORKLOADS)}")
    chosen = [w for w in WORKLOADS if not wanted or w.name in wanted]
    results: dict[tuple[str, Side], float] = {}
    print("| workload | side | instructions per call | ÷ the floor's |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="plugwire-instructions-") as scratch:
        for workload in chosen:
            for side in workload.sides:
                value = results[workload.name, side] = per_call(valgrind, workload, side, (low, high), Path(scratch))
                floor = results.get((FLOOR_OF.get(workload.name, ""), side))
                ratio = f"{value / floor:.2f}x" if floor else ""
                print(f"| {workload.name} | {side} | {value:,.0f} | {ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
