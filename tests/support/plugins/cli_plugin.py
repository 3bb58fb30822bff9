"""A plugin for the `plugwire run` and `plugwire call` tests, taking and answering plain JSON.

- `{"gate": true, "n": N}` logs "waiting at the gate: N (pid P)" on stderr (the host logs it
  under `plugwire.plugin.<name>`), then waits until the test opens the gate: it writes to the
  FIFO named by `GATE_FIFO`; answers `{"n": N, "released": true}`.
- `{"crash": true}` ends the process in the middle of the call (exit status 3).
- `{"fail": "message"}` raises an `ExecutionError` (1203).
- `{"sleep": seconds}` answers `{"slept": seconds}` after that long (a cancel ends it).
- anything else is echoed.

Its `close()` writes its pid to the file named by `CLOSED_MARKER`, when set.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import plugwire


class CliPlugin(plugwire.Plugin[Any, Any]):
    def __init__(self) -> None:
        self._gate = threading.Event()
        self._reader: threading.Thread | None = None

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="cli-plugin", version="1.2.3")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Any) -> Any:
        if not isinstance(request, dict):
            return request
        if request.get("crash"):
            os._exit(3)
        if "fail" in request:
            raise plugwire.errors.ExecutionError(str(request["fail"]))
        if "sleep" in request:
            await asyncio.sleep(request["sleep"])
            return {"slept": request["sleep"]}
        if request.get("gate"):
            self._watch_gate()
            print(f"waiting at the gate: {request['n']} (pid {os.getpid()})", file=sys.stderr, flush=True)
            await asyncio.to_thread(self._gate.wait)
            return {"n": request["n"], "released": True}
        return request

    def _watch_gate(self) -> None:
        if self._reader is None:  # one reader: opening the FIFO blocks until the test writes to it

            def read() -> None:
                with open(os.environ["GATE_FIFO"], encoding="utf-8") as fifo:
                    fifo.read()
                self._gate.set()

            self._reader = threading.Thread(target=read, name="gate", daemon=True)
            self._reader.start()

    def close(self) -> None:  # type: ignore[override]
        marker = os.environ.get("CLOSED_MARKER")
        if marker:
            Path(marker).write_text(str(os.getpid()), encoding="utf-8")


if __name__ == "__main__":
    plugwire.serve(CliPlugin())
