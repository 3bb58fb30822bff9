"""The members of a process pool: one started process with its connection, the pool's
states, the lifecycle events it tells listeners, and the first health check of a member."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from .._errors import PluginError, ProcessError
from .._models import HealthStatus, PluginInfo, Status
from ._process import PluginProcess
from ._stalls import StallWatch

__all__ = ["C", "Launcher", "MemberConnection", "PoolListener", "PoolState", "Worker", "first_health"]


class MemberConnection(Protocol):
    """What the pool needs of a process's connection: the subprocess transport's
    `HostConnection`, or the go-plugin transport's gRPC channel to the plugin's socket."""

    @property
    def lost(self) -> asyncio.Future[PluginError]:
        """Resolves with the reason once the connection is gone."""
        ...

    @property
    def alive(self) -> bool: ...

    @property
    def inflight(self) -> int: ...

    @property
    def calls_started(self) -> int: ...

    @property
    def stalls(self) -> StallWatch: ...

    def close(self, reason: PluginError) -> None:
        """Fail what is in flight with `reason` and close."""
        ...

    async def health(self) -> HealthStatus: ...


C = TypeVar("C", bound=MemberConnection)


class PoolState(enum.Enum):
    """Lifecycle of a pool."""

    NEW = "new"
    RUNNING = "running"
    OFFLINE = "offline"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class Worker(Generic[C]):
    """One started plugin process and its connection."""

    process: PluginProcess
    conn: C
    info: PluginInfo
    retired: bool = field(default=False)
    #: For the idle reaper: the connection's `calls_started` when it last looked, and since
    #: when it has found the process idle (None: busy at the last look).
    seen_calls: int = field(default=0)
    idle_since: float | None = field(default=None)
    #: The pool's count of adopted processes when this one was adopted (incidents use it).
    seq: int = field(default=0)


Launcher = Callable[[], Awaitable[Worker[C]]]
PoolListener = Callable[[str, Mapping[str, Any]], None]
"""Told of lifecycle events: ("crashed", {pid, status, reason}), ("restarted", {pid,
restarts}), ("ready", {pid, status}: a replacement passed its handshake and a health check),
("offline", {crashes, reason, retry_in})."""


async def first_health(worker: Worker[Any], timeout: float, plugin: str) -> HealthStatus:
    """The health of a fresh process, which must be healthy or degraded within `timeout`
    seconds (0: no limit).

    Raises:
        PluginError: It failed, timed out, or reported itself unhealthy or offline.
    """
    limit = timeout or None
    try:
        async with asyncio.timeout(limit):
            status: HealthStatus = await worker.conn.health()
    except TimeoutError:
        raise ProcessError(
            f"the new process did not answer its first health check within {limit:g}s", plugin=plugin
        ) from None
    if status.status not in (Status.HEALTHY, Status.DEGRADED):
        raise ProcessError(f"the new process reports itself {status.status.value}: {status.message}", plugin=plugin)
    return status
