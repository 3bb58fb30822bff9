"""A host that serves until it is stopped: the README's Quick start, run by `plugwire.run`.

    python examples/host.py          # then Ctrl-C, or: kill -TERM <pid>

It starts the auth plugin (examples/plugins/auth_plugin.py) as a supervised child process,
checks a user's token every second, and on SIGTERM or Ctrl-C shuts down gracefully: the
plugin gets the `shutdown` frame and its `close()` runs (it closes its database) before the
host exits.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import plugwire

PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))

from auth_plugin import AuthRequest, AuthResponse  # noqa: E402 - the plugin's own types


async def main() -> None:
    # Plugin log lines arrive as records under plugwire.plugin.<name>; show them.
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    manager = (
        plugwire.simple(AuthRequest, AuthResponse)
        .with_plugin("auth", plugwire.subprocess(sys.executable, str(PLUGINS / "auth_plugin.py")))
        .build()
    )
    async with manager:
        print("host: serving; stop it with Ctrl-C or SIGTERM", flush=True)
        while True:
            response = await manager.execute("auth", AuthRequest("user123", "jwt-token-here"))
            print(f"host: {response}", flush=True)
            await asyncio.sleep(1)


if __name__ == "__main__":
    plugwire.run(main)
