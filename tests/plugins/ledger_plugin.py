"""A test plugin with a side effect: every `execute` appends its request id to a ledger file
(`LEDGER`) before it works, so a test can count how often a call really ran.

`op="slow"` then takes `seconds` to answer; `op="crash"` exits the process; `op="refuse-once"`
and `op="fail-once"` answer a retryable error the first time they see a request id (the
plugin stopping, a failure it says is worth repeating); `op="own-timeout"` answers the
plugin's own timeout (1204: it gave up mid-work). With
`SLOW_RESTART` set, every start after the first (a file next to the ledger says there was one)
waits that many seconds before serving.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec

import plugwire


class Req(msgspec.Struct):
    op: str = "echo"
    seconds: float = 0.0


class Resp(msgspec.Struct):
    ran: int  # how many executes this process has recorded


LEDGER = Path(os.environ["LEDGER"])


class LedgerPlugin(plugwire.Plugin[Req, Resp]):
    def __init__(self) -> None:
        self.ran = 0
        self.seen: set[str] = set()

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="ledger", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
        # The side effect, done before any answer: a few bytes to a local file, so blocking is fine.
        with LEDGER.open("a") as ledger:  # noqa: ASYNC230
            ledger.write(f"{ctx.request_id} {request.op}\n")
        self.ran += 1
        if request.op == "crash":
            os._exit(3)
        if request.op == "slow":
            await asyncio.sleep(request.seconds)
        first = ctx.request_id not in self.seen
        self.seen.add(ctx.request_id)
        if request.op == "refuse-once" and first:
            raise plugwire.TransportError("stopping", code=plugwire.errors.ErrorCode.PLUGIN_STOPPING, retryable=True)
        if request.op == "fail-once" and first:
            raise plugwire.ExecutionError("the ledger was busy", retryable=True)
        if request.op == "own-timeout":
            raise plugwire.PluginTimeoutError("the bank did not answer in time")
        return Resp(ran=self.ran)


if __name__ == "__main__":
    started = LEDGER.with_suffix(".started")
    if started.exists() and os.environ.get("SLOW_RESTART"):
        time.sleep(float(os.environ["SLOW_RESTART"]))  # a restart that takes long
    started.touch()
    plugwire.serve(LedgerPlugin())
