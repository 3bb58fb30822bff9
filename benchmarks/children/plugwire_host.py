"""A plugwire host for the host-memory case: a manager with one subprocess echo plugin.

Registers `plugwire_echo.py` (started with this interpreter; `PYTHONPATH` passed through the
plugin's `env`), makes `CALLS` calls, prints `ready` and waits for its stdin to close; then
shuts the manager down (which stops the plugin) and exits. The benchmark reads this
process's peak resident memory while it waits, so only the host side is counted.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import msgspec

import plugwire

PLUGIN = Path(__file__).resolve().parent / "plugwire_echo.py"
CALLS = 200


class Echo(msgspec.Struct, frozen=True):
    """The benchmarks' request and response type, field for field."""

    text: str
    count: int = 0
    tags: tuple[str, ...] = ()


async def main() -> int:
    request = Echo(text="x" * 64, count=7, tags=("bench", "echo"))
    path = os.environ.get("PYTHONPATH")
    source = plugwire.subprocess(sys.executable, str(PLUGIN), env={"PYTHONPATH": path} if path else {})
    config = plugwire.PluginConfig(name="echo", connection=plugwire.ConnectionConfig(max_connections=1))
    manager = plugwire.AsyncPluginManager(Echo, Echo)
    async with manager:
        await manager.register(source, config=config)
        for _ in range(CALLS):
            if await manager.execute("echo", request) != request:
                print("wrong answer", flush=True)
                return 1
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
