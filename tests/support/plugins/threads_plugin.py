"""A plugin with a plain `def execute`, for the worker-thread tests (`tests/integration/sdk/test_plain_def_plugins.py`).

`python threads_plugin.py [MAX_THREADS]` serves with `serve(max_threads=MAX_THREADS)` (the
default bound without it).
A context variable is set before `serve()`: a call that sees it ran in a copy of the serving
task's context. Ops: `context` answers the variable; `barrier` waits with `parties` calls in all
(a broken barrier fails the call) and answers the most calls seen running at once. At a normal
interpreter exit the threads still alive are written to `EXIT_MARKER`.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import sys
import threading
from typing import Any

import plugwire

SOURCE: contextvars.ContextVar[str] = contextvars.ContextVar("SOURCE", default="unset")


class ThreadsPlugin:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.barriers: dict[int, threading.Barrier] = {}

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="threads", version="1.0.0")

    def execute(self, ctx: plugwire.ExecutionContext, request: dict[str, Any]) -> dict[str, Any]:
        if request["op"] == "context":
            return {"seen": SOURCE.get(), "thread": threading.current_thread().name}
        parties = int(request["parties"])
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            barrier = self.barriers.setdefault(parties, threading.Barrier(parties, timeout=20))
        try:
            barrier.wait()
            return {"peak": self.peak}
        finally:
            with self.lock:
                self.running -= 1


def _write_threads() -> None:
    names = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    with open(os.environ["EXIT_MARKER"], "w") as f:
        f.write("\n".join(names))


if __name__ == "__main__":
    if os.environ.get("EXIT_MARKER"):
        atexit.register(_write_threads)
    max_threads = int(sys.argv[1]) if len(sys.argv) > 1 else None
    SOURCE.set("set before serve()")
    plugwire.serve(ThreadsPlugin(), max_threads=max_threads)
