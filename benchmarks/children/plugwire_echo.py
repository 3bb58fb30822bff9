"""A plugwire plugin for the subprocess cases, served with `plugwire.serve` over stdio.

`echo` (the default) answers every request with the request itself, from an `async def`
execute; `busy` burns `request.count` steps of pure-Python work in a plain `def` execute
(run in the plugin's thread pool), the CPU-bound plugin of the pool-scaling case; its
`serve(max_threads=...)` is `PLUGWIRE_BENCH_MAX_THREADS` (the default bound when unset).

Self-contained on purpose (it imports only plugwire and msgspec): the security cases run a
verified private copy of this file from another folder. Exits when its host stops it or its
input ends, as every plugwire plugin does.
"""

from __future__ import annotations

import os
import sys

import msgspec

import plugwire


class Echo(msgspec.Struct, frozen=True):
    """The host's request and response type (`benchmarks/baselines/inprocess.py`), field for field."""

    text: str
    count: int = 0
    tags: tuple[str, ...] = ()


class EchoPlugin(plugwire.Plugin[Echo, Echo]):
    """Answers every request with the request itself."""

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Echo) -> Echo:
        return request


class BusyPlugin(plugwire.Plugin[Echo, Echo]):
    """Holds the GIL for `request.count` loop steps per call: one process is one CPU at most."""

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="busy", version="1.0.0")

    def execute(self, ctx: plugwire.ExecutionContext, request: Echo) -> Echo:  # type: ignore[override]
        total = 0
        for step in range(request.count):
            total += step * step
        return Echo(text=request.text, count=total % 1_000_003)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "echo"
    if mode == "busy":
        max_threads = os.environ.get("PLUGWIRE_BENCH_MAX_THREADS")
        plugwire.serve(BusyPlugin(), max_threads=int(max_threads) if max_threads else None)
    plugwire.serve(EchoPlugin())
