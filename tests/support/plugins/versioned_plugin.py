"""A test plugin that reports its version, for the replacement and reload tests.

    versioned_plugin.py VERSION [MODE]

VERSION is what `info()` and every answer report. MODE makes a broken new generation:
`crash` exits before the handshake, `hang` never answers it, `unhealthy` starts but reports
itself unhealthy. Ops:

- `echo`: answers `text`, the version and the pid.
- `hold`: logs "holding <request id>" (a host log record the test can wait for), then waits
  until cancelled; the cancellation is counted.
- `cancelled`: answers how many calls were cancelled so far (waits up to 10 s for one).
- `sleep`: answers after `text` seconds (a call that is still running when the test acts).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import msgspec

import plugwire


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""


class Resp(msgspec.Struct):
    text: str = ""
    version: str = ""
    pid: int = 0


class VersionedPlugin(plugwire.Plugin[Req, Resp]):
    def __init__(self, version: str, mode: str) -> None:
        self.version = version
        self.mode = mode
        self.log = logging.getLogger("versioned")
        self.cancelled = 0
        self.any_cancelled = asyncio.Event()

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="versioned", version=self.version)

    async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
        if request.op == "hold":
            self.log.warning("holding %s", ctx.request_id)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                self.any_cancelled.set()
                raise
        if request.op == "sleep":
            await asyncio.sleep(float(request.text))
        if request.op == "cancelled":
            try:
                async with asyncio.timeout(10):
                    await self.any_cancelled.wait()
            except TimeoutError:
                pass
            return Resp(text=str(self.cancelled), version=self.version, pid=os.getpid())
        return Resp(text=request.text, version=self.version, pid=os.getpid())

    async def health(self) -> plugwire.HealthStatus:
        if self.mode == "unhealthy":
            return plugwire.HealthStatus(status=plugwire.Status.UNHEALTHY, message="database unreachable")
        return plugwire.HealthStatus(status=plugwire.Status.HEALTHY, message=f"version {self.version}")


if __name__ == "__main__":
    version = sys.argv[1] if len(sys.argv) > 1 else "1"
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    if mode == "crash":
        print("version", version, "cannot start: missing library", file=sys.stderr)
        sys.exit(3)
    if mode == "hang":
        time.sleep(3600)  # never reaches the handshake
    plugwire.serve(VersionedPlugin(version, mode))
