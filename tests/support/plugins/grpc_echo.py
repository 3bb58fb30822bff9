"""A gRPC test plugin run as its own process: `python grpc_echo.py ADDRESS [serve|serve_grpc]`.

With `serve` it starts through `plugwire.serve(plugin, transport="grpc", address=...)`, the
one entry point of every transport; by default through `plugwire.sdk.serve_grpc`.

It names itself after its process id, announces each call on stderr ("call started"), in
mode "gated" finishes a call when a byte arrives on the FIFO named by the request's text, and
on close writes the file named by PLUGWIRE_TEST_CLOSE_MARKER, so tests can watch a
graceful stop from outside. PLUGWIRE_TEST_GRACE, when set, is the stop grace in seconds
(otherwise the documented default).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import msgspec

import plugwire


class Ask(msgspec.Struct, kw_only=True):
    text: str = ""
    mode: str = ""
    size: int = 0


class Answer(msgspec.Struct, kw_only=True):
    text: str
    server: str = ""


async def _wait_for_a_byte(fifo: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        await reader.readexactly(1)
    finally:
        transport.close()


class ProcessEcho(plugwire.Plugin[Ask, Answer]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name=f"echo-{os.getpid()}", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Ask) -> Answer:
        print("call started", file=sys.stderr, flush=True)
        if request.mode == "hang":
            await asyncio.Event().wait()
        if request.mode == "linger":
            await asyncio.sleep(0.5)  # work that is still running when SIGTERM arrives
        if request.mode == "gated":  # work that ends when the test writes a byte to the FIFO request.text
            await _wait_for_a_byte(request.text)
        return Answer(text=request.text, server=f"echo-{os.getpid()}")

    async def close(self) -> None:
        marker = os.environ.get("PLUGWIRE_TEST_CLOSE_MARKER")
        if marker:
            Path(marker).write_text("closed")  # noqa: ASYNC240 - a few bytes, once, at exit


if __name__ == "__main__":
    options = {"grace": float(os.environ["PLUGWIRE_TEST_GRACE"])} if "PLUGWIRE_TEST_GRACE" in os.environ else {}
    if sys.argv[2:] == ["serve"]:
        plugwire.serve(ProcessEcho(), transport="grpc", address=sys.argv[1], **options)
    plugwire.sdk.serve_grpc(ProcessEcho(), address=sys.argv[1], **options)
