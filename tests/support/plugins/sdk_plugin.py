"""A test plugin with plain `def` methods: tracks concurrency, writes a marker on close() (and one at
a normal interpreter exit)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Any

import plugwire


class SyncPlugin:
    """Not a `Plugin` subclass: serve() only needs info() and execute()."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="sync", version="2.0.0")

    def execute(self, ctx: plugwire.ExecutionContext, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(float(request.get("seconds", 0)))
            return {"thread": threading.current_thread().name, "peak": self.peak}
        finally:
            with self.lock:
                self.running -= 1

    def close(self) -> None:
        marker = os.environ.get("CLOSE_MARKER")
        if marker:
            with open(marker, "w") as f:
                f.write("closed")


if __name__ == "__main__":
    if os.environ.get("EXIT_MARKER"):  # written only if the interpreter exits normally
        atexit.register(lambda: open(os.environ["EXIT_MARKER"], "w").close())
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    plugwire.serve(SyncPlugin(), max_concurrency=limit, grace=float(os.environ.get("GRACE", "5")))
