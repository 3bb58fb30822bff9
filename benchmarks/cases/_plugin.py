"""The subprocess plugin every plugwire-over-subprocess case runs: its source, config and manager.

One place builds `plugwire.subprocess(sys.executable, children/plugwire_echo.py, env=...)`,
so every case measures the same plugin started the same way. The transport passes only a
few host variables on to a plugin (PATH, HOME, LANG, ...), so `PYTHONPATH` (which makes the
plugin import this tree's plugwire) goes through the plugin's configured `env`.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import msgspec

import plugwire

from .._model import Env
from ..baselines._proc import CHILDREN
from ..baselines.inprocess import REQUEST, Echo

__all__ = [
    "BUSY_STEPS",
    "PLUGIN_SCRIPT",
    "REQUEST",
    "Echo",
    "Manager",
    "busy_request",
    "echo_request",
    "plugin_config",
    "plugin_env",
    "plugin_pids",
    "plugin_source",
    "running_manager",
]

PLUGIN_SCRIPT = CHILDREN / "plugwire_echo.py"
BUSY_STEPS = 50_000
"""Loop steps of the busy plugin per call: about 1.5 ms of pure-Python work on these machines."""

Mode = Literal["echo", "busy"]
Manager = plugwire.AsyncPluginManager[Echo, Echo]


def plugin_env(env: Env, **extra: str) -> dict[str, str]:
    """The variables the plugin needs from the host: its import path and hash seed, when the
    host has them (`instructions.py` fixes the seed), and `extra`."""
    names: tuple[str, ...] = ("PYTHONPATH", "PYTHONHASHSEED")
    passed = {name: env.child_env[name] for name in names if name in env.child_env}
    return {**passed, **extra}


def plugin_source(
    env: Env,
    mode: Mode = "echo",
    script: Path = PLUGIN_SCRIPT,
    extra_env: dict[str, str] | None = None,
    wrapper: Sequence[str] = (),
) -> plugwire.PluginSource:
    """`plugwire.subprocess(python, script, mode)` with the import path (and `extra_env`) passed
    through `env`; `wrapper` goes before the command (`benchmarks/instructions.py`: valgrind)."""
    return plugwire.subprocess(*wrapper, sys.executable, str(script), mode, env=plugin_env(env, **(extra_env or {})))


def plugin_config(name: str, processes: int = 1, **changes: Any) -> plugwire.PluginConfig:
    """README defaults (every policy as shipped), at most `processes` plugin processes, plus `changes`."""
    config = plugwire.PluginConfig(name=name, connection=plugwire.ConnectionConfig(max_connections=processes))
    return msgspec.structs.replace(config, **changes) if changes else config


def echo_request(size: int = 0) -> Echo:
    """The small typed request (about 100 bytes), or one whose text makes it about `size` bytes encoded."""
    if not size:
        return REQUEST
    request = msgspec.structs.replace(REQUEST, text="x" * size)
    excess = len(msgspec.msgpack.encode(request)) - size  # the other fields and the string's header
    return msgspec.structs.replace(REQUEST, text="x" * (size - excess))


def busy_request() -> Echo:
    """A request that makes the busy plugin work `BUSY_STEPS` loop steps."""
    return Echo(text="busy", count=BUSY_STEPS)


@asynccontextmanager
async def running_manager(
    env: Env,
    config: plugwire.PluginConfig,
    *,
    mode: Mode = "echo",
    script: Path = PLUGIN_SCRIPT,
    manager_config: plugwire.ManagerConfig | None = None,
    request: Echo = REQUEST,
    extra_env: dict[str, str] | None = None,
    wrapper: Sequence[str] = (),
) -> AsyncIterator[Manager]:
    """A started manager with one subprocess plugin (named `config.name`), checked with one call.

    Leaving the block shuts the manager down, which stops every plugin process.
    """
    manager: Manager = plugwire.AsyncPluginManager(Echo, Echo, manager_config)
    async with manager:
        await manager.register(plugin_source(env, mode, script, extra_env, wrapper), config=config)
        answer = await manager.execute(config.name, request)
        if mode == "echo" and answer != request:
            raise RuntimeError("the subprocess echo plugin answered with a different message")
        yield manager


async def plugin_pids(manager: Manager, name: str) -> list[int]:
    """The pids of a subprocess plugin's processes, as its health check reports them."""
    status = (await manager.health())[name]
    text = status.metadata.get("pids", "")
    if not text:
        raise RuntimeError(f"plugin {name!r} reports no process ({status.status}: {status.message})")
    return [int(pid) for pid in text.split(",")]
