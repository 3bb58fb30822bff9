"""What the transports whose plugin runs as supervised processes share: the life of their
`ProcessPool` (start, restart by replacement, close) and what it reports (live processes,
crash restarts summed across replaced pools). `SubprocessTransport` and `GoPluginTransport`
differ only in how a process is launched, called and stopped."""

from __future__ import annotations

import abc
import asyncio
from typing import Generic

from .._models import PluginInfo
from .._tasks import TaskOwner
from ._members import C
from ._pool import PoolState, ProcessPool
from .base import BaseTransport

__all__ = ["PooledTransport"]


class PooledTransport(BaseTransport, Generic[C]):
    """A transport that runs its plugin in a `ProcessPool` of connections of type `C`.

    A subclass sets up `_tasks` (the owner of replaced pools still closing) and builds its
    pool in `_new_pool()`; its calls read `_pool` directly.
    """

    _tasks: TaskOwner

    def __init__(self) -> None:
        self._pool: ProcessPool[C] | None = None
        self._start_lock = asyncio.Lock()
        #: Crash restarts of the pools replaced by `restart()` (the live pool counts its own).
        self._past_restarts = 0

    @abc.abstractmethod
    def _new_pool(self) -> ProcessPool[C]:
        """A pool of this plugin's processes, not started yet."""

    async def start(self) -> PluginInfo:
        async with self._start_lock:
            if self._pool is not None and self._pool.info is not None and self._pool.state is PoolState.RUNNING:
                return self._pool.info
            old, self._pool = self._pool, None
            if old is not None:  # offline or closed: replace it
                self._past_restarts += old.restarts
                await old.aclose()
            pool = self._new_pool()
            info = await pool.start()
            self._pool = pool
            return info

    async def restart(self) -> PluginInfo:
        """Replace every process with a fresh one and forget past crashes (also brings an
        offline plugin back).

        The new pool starts first and takes the calls as soon as it is ready; the old one
        then stops gracefully in the background (its in-flight calls may finish). If the new
        pool cannot start, the old one stays and the error is raised.
        """
        async with self._start_lock:
            pool = self._new_pool()
            info = await pool.start()
            old, self._pool = self._pool, pool
            if old is not None:
                self._past_restarts += old.restarts
                if self._tasks.closed:  # restarted after aclose(): nothing waits in the background
                    await old.aclose()
                else:
                    self._tasks.start(old.aclose(), name="close the replaced pool", shielded=True)
            return info

    def processes(self) -> int:
        pool = self._pool
        return 0 if pool is None else sum(not worker.retired for worker in pool.workers)

    def crash_restarts(self) -> int:
        pool = self._pool
        return self._past_restarts + (0 if pool is None else pool.restarts)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()
        await self._tasks.aclose()  # replaced pools still closing

    @property
    def pool(self) -> ProcessPool[C] | None:
        """The process pool (None before `start()` and after `aclose()`)."""
        return self._pool
