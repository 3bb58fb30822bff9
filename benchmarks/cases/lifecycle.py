"""Lifecycle (issue 18): calls while a plugin is being replaced, a policy-only reload of 100
plugins, and what a replacement costs beyond starting the new plugin.

- `lifecycle.replace.calls`: one subprocess call while a background task replaces the plugin
  over and over (every call lands on some generation while another starts, switches or
  drains), against the same call with no replacement, in the same run. The table's p99
  column is the tail the issue bounds at 2x; the target is the framework's ratio of medians.
- `lifecycle.reload100`: `reload_config` of a config whose only change is a policy (retry) of
  each of 100 plugins, applied in place (info row; issue 18: under 50 ms in absolute time).
  The plugins are in-process ones marked as config-managed (a config file cannot describe an
  in-process plugin), so the row measures the reload's validation, diff and 100 pipeline
  rebuilds, not process starts. The baseline is a reload that changes nothing.
- `lifecycle.replace.idle`: `replace()` with nothing in flight against starting and closing
  one plugin (register + unregister) (info row; issue 18: within the start time + 50 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

import plugwire

from .._model import Env, Op, Side, at_most, case
from ..baselines.inprocess import REQUEST, Echo, EchoPlugin
from ._plugin import Manager, plugin_config, plugin_source, running_manager


@asynccontextmanager
async def _calls(env: Env, replacing: bool) -> AsyncIterator[Op]:
    async with running_manager(env, plugin_config("echo")) as manager:
        task: asyncio.Task[None] | None = None
        if replacing:

            async def replace_forever() -> None:
                while True:
                    await manager.replace("echo", plugin_source(env))

            task = asyncio.create_task(replace_forever())
            await asyncio.sleep(0)
        try:

            async def call() -> None:
                await manager.execute("echo", REQUEST)

            yield call
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # The calls must have overlapped a replacement: at least one completed while they ran
                # (pinned to one CPU with its plugin, a replacement takes ~130 ms: there may be only one).
                if manager._entries["echo"].generation < 2:
                    raise RuntimeError("the plugin was not replaced while the calls were measured")


@case(
    "lifecycle.replace.calls",
    label="subprocess call while the plugin is replaced",
    baseline=Side("subprocess call, no replacement", lambda env: _calls(env, replacing=False)),
    target=at_most(2.0),
    rounds=8,
    note="issue 18: calls during back-to-back replacements (start, switch, drain, close) against "
    "steady calls in the same run; the issue bounds the p99 at 2x (shown in the p99 column).",
)
@asynccontextmanager
async def replace_calls(env: Env) -> AsyncIterator[Op]:
    async with _calls(env, replacing=True) as op:
        yield op


_RETRIES = (plugwire.RetryConfig(max_retries=1), plugwire.RetryConfig(max_retries=2))


@asynccontextmanager
async def _hundred(env: Env, change: bool) -> AsyncIterator[Op]:
    manager: plugwire.AsyncPluginManager[Echo, Echo] = plugwire.AsyncPluginManager(Echo, Echo)
    configs = [plugwire.PluginConfig(name=f"echo-{n}", executable="unused") for n in range(100)]
    async with manager:
        for config in configs:
            await manager.register(plugwire.in_process(EchoPlugin(), codec=False), config=config)
            manager._lifecycle.registered(config.name, None)  # managed by reloads, as a config plugin is
        turn = 0

        async def reload() -> None:
            nonlocal turn
            turn += 1
            retry = _RETRIES[turn % 2] if change else _RETRIES[0]
            plugins = tuple(msgspec.structs.replace(manager._entries[c.name].config, retry=retry) for c in configs)
            report = await manager.reload_config(plugwire.ManagerConfig(plugins=plugins))
            if len(report.updated) + len(report.unchanged) != 100:
                raise RuntimeError(f"the reload did not cover the 100 plugins: {report.summary()}")

        await reload()
        yield reload


@case(
    "lifecycle.reload100",
    label="policy-only reload_config, 100 plugins",
    baseline=Side("reload_config that changes nothing, 100 plugins", lambda env: _hundred(env, change=False)),
    target=None,
    rounds=10,
    note="info (issue 18: under 50 ms in absolute time): validation, diff and 100 in-place "
    "pipeline rebuilds, against a reload whose diff finds nothing to do.",
)
@asynccontextmanager
async def reload_hundred(env: Env) -> AsyncIterator[Op]:
    async with _hundred(env, change=True) as op:
        yield op


@asynccontextmanager
async def _start_close(env: Env) -> AsyncIterator[Op]:
    manager: Manager = plugwire.AsyncPluginManager(Echo, Echo)
    async with manager:

        async def start_close() -> None:
            await manager.register(plugin_source(env), config=plugin_config("fresh"))
            await manager.unregister("fresh")

        yield start_close


@case(
    "lifecycle.replace.idle",
    label="replace() with nothing in flight",
    baseline=Side("start and close one plugin", _start_close),
    target=None,
    rounds=6,
    note="info (issue 18: a replacement takes the new plugin's start time + at most 50 ms): the "
    "health check, switch and drain are what replace() adds to starting and closing a plugin.",
)
@asynccontextmanager
async def replace_idle(env: Env) -> AsyncIterator[Op]:
    async with running_manager(env, plugin_config("echo")) as manager:

        async def replace() -> None:
            await manager.replace("echo", plugin_source(env))

        yield replace
