"""Process start-up and memory: `python -c pass` and a bare interpreter's peak memory.

Start-up cases report a ratio to `python -c pass` (spawn to exit). Memory cases read a live
child's peak resident set (`VmHWM` in /proc) once it reports ready, then let it exit.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from .._model import Env, Op, Side
from ._proc import stop

__all__ = ["PYTHON_MEMORY", "PYTHON_PASS", "peak_rss", "python_code_memory", "python_code_startup"]


def peak_rss(pid: int) -> int:
    """Peak resident memory of a live process, in bytes (`VmHWM` from /proc/<pid>/status).

    Raises:
        RuntimeError: The process has no such line (it is gone, or this is not Linux).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


@asynccontextmanager
async def python_code_startup(env: Env, code: str = "pass") -> AsyncIterator[Op]:
    """`python -c CODE`, from spawn to exit."""
    argv = [sys.executable, "-c", code]

    def run() -> None:
        subprocess.run(argv, check=True, env=env.child_env)

    yield run


@asynccontextmanager
async def python_code_memory(env: Env, code: str = "") -> AsyncIterator[Op]:
    """Peak memory of `python -c CODE` measured when it prints `ready` (then it exits)."""
    script = f"{code}\nimport sys\nprint('ready', flush=True)\nsys.stdin.read()\n"
    argv = [sys.executable, "-c", script]

    def measure() -> int:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env.child_env)
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"python -c {code!r} did not become ready (status {proc.wait()})")
            return peak_rss(proc.pid)
        finally:
            stop(proc)

    yield measure


PYTHON_PASS = Side("python -c pass", python_code_startup)
PYTHON_MEMORY = Side("bare python", partial(python_code_memory, code=""))
