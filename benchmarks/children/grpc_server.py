"""Bare grpc.aio unary echo on loopback (generic handler, bytes in and out, no stubs).

Prints its port when serving and stops when its stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def main() -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
