"""gRPC plugins: `manager.execute` over the gRPC transport against a bare `grpc.aio` call (issue 4).

Both servers run in a child process on loopback TCP; the plugwire one is `plugwire_grpc_echo.py`
(the echo plugin behind `plugwire.sdk.GrpcPluginServer`), the bare one echoes raw bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import plugwire

from .._model import Env, Kind, Op, at_least, at_most, case
from ..baselines._proc import server_child
from ..baselines.peers import GRPC_AIO, GRPC_AIO_X64
from ._plugin import REQUEST, Echo, plugin_config


@asynccontextmanager
async def _grpc_manager(env: Env, in_flight: int) -> AsyncIterator[Op]:
    with server_child(env, "plugwire_grpc_echo.py") as (_proc, port):
        manager: plugwire.AsyncPluginManager[Echo, Echo] = plugwire.AsyncPluginManager(Echo, Echo)
        async with manager:
            await manager.register(plugwire.grpc(f"127.0.0.1:{port}"), config=plugin_config("echo"))
            if await manager.execute("echo", REQUEST) != REQUEST:
                raise RuntimeError("the gRPC echo plugin answered with a different message")

            async def one() -> None:
                await manager.execute("echo", REQUEST)

            async def gathered() -> None:
                await asyncio.gather(*(manager.execute("echo", REQUEST) for _ in range(in_flight)))

            yield one if in_flight == 1 else gathered


@case(
    "grpc.small",
    label="manager.execute, gRPC plugin",
    baseline=GRPC_AIO,
    target=at_most(1.25),
    requires=("grpc",),
    note="issue 4: a small typed request through the full execute path over gRPC, against a bare "
    "grpc.aio unary call with raw bytes.",
)
@asynccontextmanager
async def grpc_small(env: Env) -> AsyncIterator[Op]:
    async with _grpc_manager(env, 1) as op:
        yield op


@case(
    "grpc.x64",
    label="manager.execute, gRPC plugin, 64 in flight",
    baseline=GRPC_AIO_X64,
    target=at_least(0.8),
    kind=Kind.THROUGHPUT,
    per_call=64,
    requires=("grpc",),
    note="issue 4: throughput with 64 calls in flight on one channel.",
)
@asynccontextmanager
async def grpc_x64(env: Env) -> AsyncIterator[Op]:
    async with _grpc_manager(env, 64) as op:
        yield op
