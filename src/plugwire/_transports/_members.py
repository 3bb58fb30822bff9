"""The members of a process pool: one started process with its connection, the pool's
states, the lifecycle events it tells listeners, and the first health check of a member."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import ProcessError
from .._models import HealthStatus, PluginInfo, Status
from ._connection import HostConnection
from ._process import PluginProcess

__all__ = ["Launcher", "PoolListener", "PoolState", "Worker", "first_health"]


class PoolState(enum.Enum):
    """Lifecycle of a pool."""

    NEW = "new"
    RUNNING = "running"
    OFFLINE = "offline"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class Worker:
    """One started plugin process and its connection."""

    process: PluginProcess
    conn: HostConnection
    info: PluginInfo
    retired: bool = field(default=False)
    #: For the idle reaper: the connection's `calls_started` when it last looked, and since
    #: when it has found the process idle (None: busy at the last look).
    seen_calls: int = field(default=0)
    idle_since: float | None = field(default=None)
    #: The pool's count of adopted processes when this one was adopted (incidents use it).
    seq: int = field(default=0)


Launcher = Callable[[], Awaitable[Worker]]
PoolListener = Callable[[str, Mapping[str, Any]], None]
"""Told of lifecycle events: ("crashed", {pid, status, reason}), ("restarted", {pid,
restarts}), ("ready", {pid, status}: a replacement passed its handshake and a health check),
("offline", {crashes, reason, retry_in})."""


async def first_health(worker: Worker, timeout: float, plugin: str) -> HealthStatus:
    """The health of a fresh process, which must be healthy or degraded within `timeout`
    seconds (0: no limit).

    Raises:
        PluginError: It failed, timed out, or reported itself unhealthy or offline.
    """
    limit = timeout or None
    try:
        async with asyncio.timeout(limit):
            status = await worker.conn.health()
    except TimeoutError:
        raise ProcessError(
            f"the new process did not answer its first health check within {limit:g}s", plugin=plugin
        ) from None
    if status.status not in (Status.HEALTHY, Status.DEGRADED):
        raise ProcessError(f"the new process reports itself {status.status.value}: {status.message}", plugin=plugin)
    return status
