"""CPU placement: pin the host (every thread) and the processes it started to chosen CPUs.

On these 2-vCPU machines a cross-core wake-up alone costs ~60 µs, which hides everything a
latency case wants to see; so latency cases run with host and children on one CPU (`same`)
and are also reported unpinned (`none`). `split` puts the host on one CPU and its children
on another, to show the cross-core cost on its own.

Children started by a side's setup inherit the host's mask when they are forked; the runner
also re-applies the child mask to every descendant after setup, which is what `split` needs
and what covers processes started before the host was pinned.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._model import PinMode

__all__ = ["ORIGINAL_CPUS", "Placement", "descendants", "restore"]

ORIGINAL_CPUS: frozenset[int] = frozenset(os.sched_getaffinity(0))
"""The CPUs this process could use when the suite started (restored at the end)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Which CPUs the host and its child processes may run on."""

    mode: PinMode
    host: frozenset[int]
    children: frozenset[int]

    @classmethod
    def for_mode(cls, mode: PinMode, cpus: Iterable[int] = ORIGINAL_CPUS) -> Placement:
        """The placement for `mode` on the given CPUs.

        Raises:
            ValueError: `split` with fewer than two CPUs, or an unknown mode.
        """
        ordered = sorted(cpus)
        if mode == "none":
            return cls(mode, frozenset(ordered), frozenset(ordered))
        if mode == "same":
            return cls(mode, frozenset(ordered[:1]), frozenset(ordered[:1]))
        if mode == "split":
            if len(ordered) < 2:
                raise ValueError("--pin split needs at least two CPUs")
            return cls(mode, frozenset(ordered[:1]), frozenset(ordered[1:2]))
        raise ValueError(f"unknown pin mode {mode!r}")

    def describe(self) -> str:
        """`host CPU 0, children CPU 0` style text for the results."""
        return f"host CPUs {_cpus(self.host)}, children CPUs {_cpus(self.children)}"

    def pin_host(self) -> None:
        """Apply the host mask to every thread of this process."""
        _set_all_threads(os.getpid(), self.host)

    def pin_children(self, pids: Iterable[int] | None = None) -> int:
        """Apply the child mask to every thread of `pids` (default: every descendant); returns how many."""
        count = 0
        for pid in descendants(os.getpid()) if pids is None else pids:
            if _set_all_threads(pid, self.children):
                count += 1
        return count


def restore() -> None:
    """Give this process (all threads) back the CPUs it started with."""
    _set_all_threads(os.getpid(), ORIGINAL_CPUS)


def descendants(root: int, proc: Path = Path("/proc")) -> list[int]:
    """Every live descendant of `root` (children, grandchildren, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name may contain spaces and parentheses: fields start after the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _set_all_threads(pid: int, cpus: frozenset[int]) -> bool:
    """Pin each thread of `pid` (affinity is per thread on Linux); False if it is gone."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return False
    for tid in tids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(tid, cpus)
    return True


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))
