"""A host run by `plugwire.run`, for the host-signal tests (tests/integration/transports/test_host_death.py).

    pool_host.py async N      one plugin grown to a pool of N processes, each holding calls
    pool_host.py blocking N   N plugins of one process each, on the blocking PluginManager

It prints the pids of every plugin process on one line, then runs until it is stopped. The
plugins are tests/support/plugins/lifecycle_plugin.py: with PLUGWIRE_TEST_MARKERS set (passed on to
them), each writes `<pid>.closed` there when its `close()` runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from lifecycle_plugin import Req, Resp  # the plugin's own message types

import plugwire

HERE = Path(__file__).resolve().parent


def source() -> Any:
    env = {name: os.environ[name] for name in ("PYTHONPATH", "PLUGWIRE_TEST_MARKERS") if name in os.environ}
    return plugwire.subprocess(sys.executable, str(HERE / "lifecycle_plugin.py"), env=env)


def plugin_config(name: str, processes: int) -> plugwire.PluginConfig:
    connection = plugwire.ConnectionConfig(max_connections=processes, request_timeout=3600)
    return plugwire.PluginConfig(name=name, connection=connection)


# A call still in flight would hold the shutdown for an hour: the graceful stop must cancel them.
CONFIG = plugwire.ManagerConfig(shutdown_timeout=3600)


class Held(logging.Handler):
    """Counts the plugin's "holding" log records (they arrive on the loop's thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("holding "):
            self.count += 1
            self.changed.set()


async def hold_until_grown(manager: plugwire.AsyncPluginManager[Req, Resp], calls: asyncio.TaskGroup, size: int) -> Any:
    """Grow the plugin's pool to `size` processes: calls that never return keep every process
    busy, so the next call makes the pool start one more."""
    held = Held()
    logging.getLogger("plugwire.plugin.pool").addHandler(held)
    pool = manager._entries["pool"].transport.pool  # type: ignore[attr-defined]
    sent = 0
    while len(pool.workers) < size:
        calls.create_task(manager.execute("pool", Req(op="hold")))
        sent += 1
        while held.count < sent:
            held.changed.clear()
            await held.changed.wait()
        await pool.wait_for(lambda: not pool._growing)  # a start this call asked for is done
    return pool


async def async_host(size: int) -> None:
    async with plugwire.AsyncPluginManager(Req, Resp, CONFIG) as manager:
        await manager.register(source(), config=plugin_config("pool", size))
        async with asyncio.TaskGroup() as calls:
            pool = await hold_until_grown(manager, calls, size)
            print(" ".join(str(worker.process.pid) for worker in pool.workers), flush=True)
            await asyncio.Event().wait()  # until stopped


def blocking_host(size: int) -> None:
    with plugwire.PluginManager(Req, Resp, CONFIG) as manager:
        pids = []
        for index in range(size):
            manager.register(source(), config=plugin_config(f"p{index}", 1))
            pids.append(manager.execute(f"p{index}", Req()).pid)
        print(" ".join(map(str, pids)), flush=True)
        threading.Event().wait()  # until stopped


if __name__ == "__main__":
    mode, count = sys.argv[1], int(sys.argv[2])
    if mode == "async":
        plugwire.run(async_host(count))
    else:
        plugwire.run(lambda: blocking_host(count))
