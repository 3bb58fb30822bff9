"""The in-process echo plugin, and the call a user would write by hand without a manager.

`async with asyncio.timeout(t): await plugin.execute(ctx, request)`, with the same timeout the
manager's default pipeline uses (`connection.request_timeout`) and one context made up front.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

import plugwire

from .._model import Env, Op, Side

__all__ = ["HANDWRITTEN", "REQUEST", "Echo", "EchoPlugin", "handwritten_timeout"]


class Echo(msgspec.Struct, frozen=True):
    """A small typed message (about 100 bytes encoded)."""

    text: str
    count: int = 0
    tags: tuple[str, ...] = ()


REQUEST = Echo(text="x" * 64, count=7, tags=("bench", "echo"))


class EchoPlugin(plugwire.Plugin[Echo, Echo]):
    """Answers every request with the request itself."""

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="echo", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Echo) -> Echo:
        return request


@asynccontextmanager
async def handwritten_timeout(env: Env) -> AsyncIterator[Op]:
    """The plugin's `execute` awaited under `asyncio.timeout`, nothing else."""
    plugin = EchoPlugin()
    context = plugwire.ExecutionContext()
    limit = plugwire.ConnectionConfig().request_timeout

    async def call() -> None:
        async with asyncio.timeout(limit):
            await plugin.execute(context, REQUEST)

    yield call


HANDWRITTEN = Side("hand-written asyncio.timeout call", handwritten_timeout)
