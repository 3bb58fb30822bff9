"""`TaskOwner`: the one place a long-lived object starts, cancels, awaits and logs its tasks.

A small nursery (trio's word) for objects that outlive any one call: a process pool, a
transport, a health monitor, a file watcher, the manager. Each owns exactly one and closes
it in its own close verb. The rules:

- `start(coro, name=...)` runs `coro` as a task the owner keeps until it ends; it removes
  itself when done, so an owner that runs many short tasks does not grow.
- A task that fails is logged once, naming the owner and the task, then handed to its
  `on_error` callback if it has one (so the object can react: take a plugin offline, say).
  A cancelled task is not a failure.
- `aclose()` cancels every task and waits for them all; a `shielded` task is not
  cancelled but awaited (a process being stopped: cut short, it would be left running).
  The wait is bounded by `close_timeout`: a shielded task still running then is cancelled,
  and a task that outlives its cancellation too is logged by name and left to the loop
  (nothing is destroyed while pending). `aclose()` is idempotent, and afterwards `start()`
  raises `RuntimeError`: starting work on a closed object is a bug in plugwire, not a
  condition a user can meet.
- Called from one of its own tasks, `aclose()` neither cancels nor waits for that task.

Nothing here is on a call's path: calls never start, track or end tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["ErrorHandler", "TaskOwner"]

T = TypeVar("T")

ErrorHandler = Callable[[BaseException], None]
"""Told of a task's failure (after it was logged); must not raise (if it does, that is logged)."""

_log = logging.getLogger("plugwire.tasks")


@dataclass(slots=True)
class _Child:
    name: str
    shielded: bool
    on_error: ErrorHandler | None
    cancelled: bool = False


class TaskOwner:
    """Starts, tracks, cancels and awaits the background tasks of one long-lived object.

    Args:
        name: Names the owner in logs and prefixes its tasks' names, e.g. `plugwire-pool-echo`.
        close_timeout: Seconds `aclose()` waits for the tasks (then again after cancelling
            shielded ones that are still running) before it logs and gives up on them.
        logger: Where failures are logged (default: `plugwire.tasks`).
    """

    def __init__(self, name: str, *, close_timeout: float = 10.0, logger: logging.Logger | None = None) -> None:
        self.name = name
        self.close_timeout = close_timeout
        self._log = logger or _log
        self._children: dict[asyncio.Task[Any], _Child] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<TaskOwner {self.name!r} {state}, {len(self._children)} tasks>"

    @property
    def closed(self) -> bool:
        """True once `aclose()` began: no task may start any more."""
        return self._closed

    def __len__(self) -> int:
        """The tasks running now."""
        return len(self._children)

    def tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks running now (a copy)."""
        return list(self._children)

    def start(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str,
        on_error: ErrorHandler | None = None,
        shielded: bool = False,
    ) -> asyncio.Task[T]:
        """Run `coro` as a task of this owner (needs a running loop).

        Args:
            coro: The work.
            name: What the task does, for logs (the task's name is `<owner>: <name>`).
            on_error: Told of the task's exception, after it was logged.
            shielded: Not cancelled by `aclose()` (only awaited, within `close_timeout`).

        Raises:
            RuntimeError: The owner is closed.
        """
        if self._closed:
            coro.close()  # never awaited: say nothing about it beyond this error
            raise RuntimeError(f"{self.name} is closed: cannot start task {name!r}")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}: {name}")
        self._children[task] = _Child(name, shielded, on_error)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        child = self._children.pop(task, None)
        if child is None or task.cancelled():
            return
        error = task.exception()  # retrieved: asyncio will not log it a second time
        if error is None:
            return
        self._log.error("%s: task %r failed", self.name, child.name, exc_info=error)
        if child.on_error is not None:
            try:
                child.on_error(error)
            except Exception:
                self._log.exception("%s: the error handler of task %r raised", self.name, child.name)

    async def aclose(self) -> None:
        """Cancel every task (shielded ones excepted) and wait until they all ended; idempotent."""
        self._closed = True
        current = asyncio.current_task()
        for task, child in list(self._children.items()):
            if not child.shielded and task is not current:
                self._cancel(task, child)
        pending = await self._wait(current)
        if not pending:
            return
        for task in pending:
            waited = self._children.get(task)
            if waited is not None and not waited.cancelled:
                self._log.warning(
                    "%s: task %r still running %gs after close began; cancelling it",
                    self.name,
                    waited.name,
                    self.close_timeout,
                )
                self._cancel(task, waited)
        for task in await self._wait(current):
            stuck = self._children.get(task)
            self._log.error(
                "%s: task %r ignores cancellation; left running after %gs",
                self.name,
                stuck.name if stuck is not None else task.get_name(),
                self.close_timeout,
            )

    @staticmethod
    def _cancel(task: asyncio.Task[Any], child: _Child) -> None:
        # Once: a second cancel() would cancel a task again that is cleaning up after the first.
        if not child.cancelled:
            child.cancelled = True
            task.cancel()

    async def _wait(self, current: asyncio.Task[Any] | None) -> set[asyncio.Task[Any]]:
        """Wait up to `close_timeout` for the tasks (but `current`); the ones still running."""
        tasks = {task for task in self._children if task is not current}
        if not tasks:
            return set()
        _, pending = await asyncio.wait(tasks, timeout=self.close_timeout)
        return pending
