"""A test plugin with a side effect: every `execute` that begins appends one line to a ledger
file before it works, so a test can count how often a call really ran, and where.

Run by the host as `python ledger_plugin.py` with `LEDGER` (the file every process of the
plugin appends to) in its configured env. Each line is ``<id> <pid> <op>``: the request's
`id` (the call's `ctx.request_id` when it has none), the process, the operation. It is written
with one `write()` to a file opened with O_APPEND, so lines of concurrent processes never
interleave and a line written an instant before a kill is kept (no fsync: the kernel keeps the
page when a process dies). With `LEDGER_SIGNAL` set (a FIFO the test reads), the same line
goes there too, so the test learns as it happens that an execution began (the crash storm).

Then the request's `seconds` of work, and the answer. `op="crash"` exits the process first;
`op="refuse-once"` and `op="fail-once"` answer a retryable error the first time they see a
request id (the plugin stopping, a failure it says is worth repeating); `op="own-timeout"`
answers the plugin's own timeout (1204: it gave up mid-work). With `SLOW_RESTART` set, every
start after the first (a file next to the ledger says there was one) waits that many seconds
before serving.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec

import plugwire


class Job(msgspec.Struct, frozen=True):
    """One call: the caller's id for it (optional), what to do, and how long to work."""

    id: str = ""
    op: str = "echo"
    seconds: float = 0.0


class Done(msgspec.Struct, frozen=True):
    """The answer: the call's id, the process that ran it, and how many executes it has recorded."""

    id: str
    pid: int
    ran: int


def _open_signal(path: str) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # fails at once if the test is not reading
    os.set_blocking(fd, True)
    return fd


class LedgerPlugin(plugwire.Plugin[Job, Done]):
    """Records every execution before doing its work."""

    def __init__(self, ledger: str, signal: str | None) -> None:
        self.ledger = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.signal = _open_signal(signal) if signal else None
        self.pid = os.getpid()
        self.ran = 0
        self.seen: set[str] = set()

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="ledger", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Job) -> Done:
        call = request.id or ctx.request_id
        line = f"{call} {self.pid} {request.op}\n".encode()
        os.write(self.ledger, line)
        if self.signal is not None:
            os.write(self.signal, line)
        self.ran += 1
        if request.op == "crash":
            os._exit(3)
        if request.seconds > 0:
            await asyncio.sleep(request.seconds)
        first = ctx.request_id not in self.seen
        self.seen.add(ctx.request_id)
        if request.op == "refuse-once" and first:
            raise plugwire.TransportError("stopping", code=plugwire.errors.ErrorCode.PLUGIN_STOPPING, retryable=True)
        if request.op == "fail-once" and first:
            raise plugwire.ExecutionError("the ledger was busy", retryable=True)
        if request.op == "own-timeout":
            raise plugwire.PluginTimeoutError("the bank did not answer in time")
        return Done(id=call, pid=self.pid, ran=self.ran)


if __name__ == "__main__":
    ledger = os.environ["LEDGER"]
    started = Path(ledger).with_suffix(".started")
    if started.exists() and os.environ.get("SLOW_RESTART"):
        time.sleep(float(os.environ["SLOW_RESTART"]))  # a restart that takes long
    started.touch()
    plugwire.serve(LedgerPlugin(ledger, os.environ.get("LEDGER_SIGNAL")))
