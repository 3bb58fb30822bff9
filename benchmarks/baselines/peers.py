"""The peers a Python user might pick instead of plugwire, each as an echo service.

`multiprocessing.Pipe`, rpyc and Pyro5 over loopback TCP, and a bare `grpc.aio` unary call
(generic handler, bytes in and out). Every server runs in its own child process, like a plugin.
Each peer gets its fastest ordinary setup: rpyc with TCP_NODELAY and the method looked up once,
Pyro5 with its `marshal` serializer (bytes travel as bytes instead of base64 text).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from .._model import Env, Op, Side
from ._proc import SMALL, payload, server_child

__all__ = ["GRPC_AIO", "GRPC_AIO_X64", "MP_PIPE", "PYRO5", "RPYC", "RPYC_X64", "mp_echo_child"]


def mp_echo_child(conn: Connection) -> None:
    """The `multiprocessing.Pipe` echo loop (runs in a spawned child); ends when the host closes its end."""
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass


@asynccontextmanager
async def mp_pipe(env: Env, size: int = SMALL) -> AsyncIterator[Op]:
    """`send_bytes` then `recv_bytes` on a `multiprocessing.Pipe` to a spawned child."""
    context = multiprocessing.get_context("spawn")  # never fork a host that runs grpc threads
    host_end, child_end = context.Pipe()
    child = context.Process(target=mp_echo_child, args=(child_end,), daemon=True)
    child.start()
    child_end.close()
    data = payload(size)

    def round_trip() -> None:
        host_end.send_bytes(data)
        host_end.recv_bytes()

    try:
        host_end.send_bytes(data)
        if host_end.recv_bytes() != data:
            raise RuntimeError("the multiprocessing child answered with different bytes")
        yield round_trip
    finally:
        host_end.close()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
        child.close()


@asynccontextmanager
async def rpyc_echo(env: Env, size: int = SMALL, in_flight: int = 1) -> AsyncIterator[Op]:
    """rpyc: one blocking call, or `in_flight` `rpyc.async_` calls then their results."""
    import rpyc  # type: ignore[import-untyped,unused-ignore]

    data = payload(size)
    with server_child(env, "rpyc_server.py") as (_proc, port):
        # TCP_NODELAY on both ends (rpyc.connect leaves Nagle on): its best ordinary setup.
        conn: Any = rpyc.connect_stream(rpyc.SocketStream.connect("127.0.0.1", int(port), nodelay=True))
        try:
            echo = conn.root.echo  # the attribute lookup is itself a round trip: do it once
            async_echo = rpyc.async_(echo)

            def round_trip() -> None:
                echo(data)

            def pipelined() -> None:
                for pending in [async_echo(data) for _ in range(in_flight)]:
                    pending.value  # noqa: B018 - waits for the answer; raises if the call failed

            if echo(data) != data:
                raise RuntimeError("rpyc answered with different bytes")
            yield round_trip if in_flight == 1 else pipelined
        finally:
            conn.close()


@asynccontextmanager
async def pyro_echo(env: Env, size: int = SMALL) -> AsyncIterator[Op]:
    """Pyro5: one blocking call on a bound proxy using the marshal serializer."""
    import Pyro5.api  # type: ignore[import-untyped,unused-ignore]

    data = payload(size)
    with server_child(env, "pyro_server.py") as (_proc, uri):
        proxy: Any = Pyro5.api.Proxy(uri)
        proxy._pyroSerializer = "marshal"
        try:
            proxy._pyroBind()
            if proxy.echo(data) != data:
                raise RuntimeError("Pyro5 answered with different bytes")
            yield partial(proxy.echo, data)
        finally:
            proxy._pyroRelease()


@asynccontextmanager
async def grpc_aio_echo(env: Env, size: int = SMALL, in_flight: int = 1) -> AsyncIterator[Op]:
    """A bare `grpc.aio` unary call over loopback TCP; `in_flight` calls gathered at once."""
    import grpc  # type: ignore[import-untyped,unused-ignore]

    data = payload(size)
    with server_child(env, "grpc_server.py") as (_proc, port):
        channel: Any = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            await asyncio.wait_for(channel.channel_ready(), 10)
            call = channel.unary_unary("/bench.Echo/Echo")

            async def round_trip() -> None:
                await call(data)

            async def gathered() -> None:
                await asyncio.gather(*(call(data) for _ in range(in_flight)))

            if await call(data) != data:
                raise RuntimeError("grpc.aio answered with different bytes")
            yield round_trip if in_flight == 1 else gathered
        finally:
            await channel.close()


MP_PIPE = Side("multiprocessing.Pipe", mp_pipe)
RPYC = Side("rpyc", rpyc_echo, requires=("rpyc",))
RPYC_X64 = Side("rpyc, 64 in flight", partial(rpyc_echo, in_flight=64), requires=("rpyc",), per_call=64)
PYRO5 = Side("Pyro5 (marshal)", pyro_echo, requires=("Pyro5",))
GRPC_AIO = Side("bare grpc.aio", grpc_aio_echo, requires=("grpc",))
GRPC_AIO_X64 = Side(
    "bare grpc.aio, 64 in flight", partial(grpc_aio_echo, in_flight=64), requires=("grpc",), per_call=64
)
