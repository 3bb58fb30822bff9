"""A host that starts two plugins, prints their pids, then waits to be killed (SIGKILL test).

The raw plugin in "no-read" mode never reads its input, so end-of-file cannot stop it: only
the parent-death signal does.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import plugwire

HERE = Path(__file__).resolve().parent


async def main() -> None:
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]}
    manager: plugwire.AsyncPluginManager[dict[str, Any], dict[str, Any]] = plugwire.AsyncPluginManager(dict, dict)
    async with manager:
        await manager.register(plugwire.subprocess(sys.executable, str(HERE / "echo_plugin.py"), env=env), name="sdk")
        await manager.register(
            plugwire.subprocess(sys.executable, str(HERE / "raw_plugin.py"), "no-read", env=env), name="raw"
        )
        pids = [manager._entries[n].transport.pool.workers[0].process.pid for n in ("sdk", "raw")]  # type: ignore[attr-defined]
        print(" ".join(map(str, pids)), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
