"""Facts about the machine a run happened on, recorded beside its numbers."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ._pinning import ORIGINAL_CPUS

__all__ = ["cpu_model", "machine_facts", "machine_line"]


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first `model name` in /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    """Everything that changes the numbers: CPUs, their model, Python, the event loop, load."""
    loop_type = type(loop)
    policy = type(asyncio.get_event_loop_policy())
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": sorted(ORIGINAL_CPUS),
        "cpu_model": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "event_loop": f"{loop_type.__module__}.{loop_type.__qualname__}",
        "event_loop_policy": f"{policy.__module__}.{policy.__qualname__}",
        "load_average_at_start": list(os.getloadavg()),
    }


def machine_line(facts: dict[str, Any], pinning: str) -> str:
    """One line for the docs: `2 CPUs (AMD EPYC), CPython 3.11.7, asyncio ..., load ...`."""
    load = facts.get("load_average_at_start") or [float("nan")]
    loop = str(facts.get("event_loop", "?")).rsplit(".", 1)[-1]
    return (
        f"{facts.get('cpu_count')} CPUs ({facts.get('cpu_model')}), {facts.get('python')}, "
        f"event loop {loop}, {facts.get('platform')}; pinning: {pinning}; "
        f"1-minute load average at start {load[0]:.2f}"
    )
