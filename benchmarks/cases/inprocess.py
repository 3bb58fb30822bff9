"""In-process plugins: `manager.execute` with the default pipeline against the hand-written call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import plugwire

from .._model import Env, Op, at_most, case
from ..baselines.inprocess import HANDWRITTEN, REQUEST, Echo, EchoPlugin


@asynccontextmanager
async def _manager_execute(codec: bool, manager_config: plugwire.ManagerConfig | None = None) -> AsyncIterator[Op]:
    # Every policy on (issue 5): the default pipeline plus a rate limit far above what the
    # benchmark can reach, so it is checked on every call but never refuses one.
    config = plugwire.PluginConfig(
        name="echo",
        rate_limit=plugwire.RateLimitConfig(enabled=True, requests_per_second=1e9, burst_size=1_000_000),
    )
    manager: plugwire.AsyncPluginManager[Echo, Echo] = plugwire.AsyncPluginManager(Echo, Echo, manager_config)
    async with manager:
        await manager.register(plugwire.in_process(EchoPlugin(), codec=codec), config=config)
        if await manager.execute("echo", REQUEST) != REQUEST:
            raise RuntimeError("the echo plugin answered with a different message")
        yield partial(manager.execute, "echo", REQUEST)


@case(
    "inprocess.execute.codec_off",
    label="manager.execute, in_process(codec=False)",
    baseline=HANDWRITTEN,
    target=at_most(2.5),
    note="issue 5: every policy enabled (rate limit, circuit breaker, retry, timeout) against "
    "`async with asyncio.timeout(t): await plugin.execute(ctx, req)` written by hand.",
)
@asynccontextmanager
async def inprocess_codec_off(env: Env) -> AsyncIterator[Op]:
    async with _manager_execute(codec=False) as op:
        yield op


@case(
    "inprocess.execute.codec_on",
    label="manager.execute, in_process(codec=True)",
    baseline=HANDWRITTEN,
    target=None,
    note="info: the same call with the codec on (encode, validate, decode both ways), which the "
    "hand-written call does not do; shows the codec's share.",
)
@asynccontextmanager
async def inprocess_codec_on(env: Env) -> AsyncIterator[Op]:
    async with _manager_execute(codec=True) as op:
        yield op
