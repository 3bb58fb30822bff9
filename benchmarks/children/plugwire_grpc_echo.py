"""A plugwire plugin served over gRPC for the gRPC cases (`plugwire.sdk.GrpcPluginServer`).

Answers every request with the request itself, like `plugwire_echo.py`. Prints its port when
serving and stops when its stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

from plugwire_echo import EchoPlugin  # type: ignore[import-not-found,unused-ignore]  # a sibling script

import plugwire


async def main() -> None:
    server = plugwire.sdk.GrpcPluginServer(EchoPlugin(), address="127.0.0.1:0")
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.aclose()


if __name__ == "__main__":
    asyncio.run(main())
