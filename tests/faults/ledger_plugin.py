"""The crash storm's plugin: writes one ledger line per execution, then works a little.

Run by the host as `python ledger_plugin.py` with two variables in its configured env:
`PLUGWIRE_LEDGER`, a file every process of the plugin appends to, and `PLUGWIRE_LEDGER_SIGNAL`,
a FIFO the test reads to learn, as it happens, that an execution began (and in which process).
Each line is ``<job id> <pid>``, written with one `write()`: on a file opened with O_APPEND
and on a pipe, a write this small is never interleaved with another process's, so the ledger
holds exactly one whole line per execution that began, even when the process is killed an
instant later. No fsync: the kernel keeps the page when a process dies.
"""

from __future__ import annotations

import asyncio
import os

import msgspec

import plugwire


class Job(msgspec.Struct, frozen=True):
    """One call of the storm: a unique id and how long its work takes."""

    id: str
    work: float = 0.0


class Done(msgspec.Struct, frozen=True):
    """The answer: the job's id and the process that ran it."""

    id: str
    pid: int


def _open_signal(path: str) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # fails at once if the test is not reading
    os.set_blocking(fd, True)
    return fd


class LedgerPlugin(plugwire.Plugin[Job, Done]):
    """Records every execution before doing its work."""

    def __init__(self) -> None:
        self.ledger = os.open(os.environ["PLUGWIRE_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.signal = _open_signal(os.environ["PLUGWIRE_LEDGER_SIGNAL"])
        self.pid = os.getpid()

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="ledger", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Job) -> Done:
        line = f"{request.id} {self.pid}\n".encode()
        os.write(self.ledger, line)
        os.write(self.signal, line)
        if request.work > 0:
            await asyncio.sleep(request.work)
        return Done(id=request.id, pid=self.pid)


if __name__ == "__main__":
    plugwire.serve(LedgerPlugin())
