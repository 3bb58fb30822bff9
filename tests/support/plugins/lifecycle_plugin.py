"""A test plugin whose calls can be held until cancelled, and whose close() leaves a marker.

- `hold`: logs "holding <request id>" (a host log record the test can wait for), then
  waits until cancelled; the cancellation is counted.
- `cancelled`: waits (at most 10 s) until some call was cancelled; answers how many were.
- anything else: echoes `text` with the plugin's pid.

With PLUGWIRE_TEST_MARKERS set to a folder, `close()` writes `<pid>.closed` there.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import msgspec

import plugwire


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""


class Resp(msgspec.Struct):
    text: str = ""
    pid: int = 0


class LifecyclePlugin(plugwire.Plugin[Req, Resp]):
    def __init__(self) -> None:
        self.log = logging.getLogger("lifecycle")
        self.cancelled = 0
        self.any_cancelled = asyncio.Event()

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="lifecycle", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
        if request.op == "hold":
            self.log.warning("holding %s", ctx.request_id)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                self.any_cancelled.set()
                raise
        if request.op == "cancelled":
            try:
                async with asyncio.timeout(10):
                    await self.any_cancelled.wait()
            except TimeoutError:
                pass
            return Resp(text=str(self.cancelled), pid=os.getpid())
        return Resp(text=request.text, pid=os.getpid())

    async def close(self) -> None:
        folder = os.environ.get("PLUGWIRE_TEST_MARKERS")
        if folder:
            await asyncio.to_thread(Path(folder, f"{os.getpid()}.closed").write_text, "closed\n")


if __name__ == "__main__":
    plugwire.serve(LifecyclePlugin())
