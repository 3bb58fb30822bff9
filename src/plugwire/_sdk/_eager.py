"""Starting a call's coroutine at once, in the read that delivered it, inside a real task.

A call that answers without suspending (most of them) then costs no task creation and no
extra event-loop turn: on one CPU that turn, and the process switches around it, are a third
of a small round trip. Plugin code must not notice: `asyncio.current_task()` is a real task
for the whole call, `asyncio.timeout()` and `TaskGroup` work, each call has its own copy of
the context variables, and `cancel()` on the task cancels the call.

The contract of `EagerStarter.start(coro)`, the same on every Python version:

- the call's first step runs now, before `start` returns, also when `start` is called from
  inside another running task (that task steps aside for the step, as 3.12's eager tasks do);
- it returns None when the call finished (or ended cancelled) in that step, else the task
  that runs the rest of it;
- an exception from the first step is raised by `start` itself, never left in a task nobody
  reads; one from a later step fails the returned task.

How, picked once per starter by trying each way on the loop (`new_starter`; the ways that
need more than the public API are probed in `_seam.py`):

1. `loop.create_task(coro, eager_start=True)`: the public API of Python 3.14+ (3.13.3+ and
   recent uvloops pass the keyword on too), used only when a probe task on this loop really
   finishes eagerly (`_seam.eager_task_factory`).
2. `asyncio.Task(coro, loop=loop, eager_start=True)`: the public API of 3.12 and 3.13 (and
   the way on loops whose `create_task` does not take `eager_start`, such as uvloop's).
3. Carrier tasks, on 3.11 only (`_eager311.py`, over the private task-switching names that
   `_seam.task_switching` probes at import; delete both with 3.11).

The plain reference path, `_PlainStarter`, is `loop.create_task(coro)`: the call starts on
the next loop turn, and an exception from its first step fails the returned task like a
later step's would (the server reads both the same way). It is used when the accelerators
are off (`PLUGWIRE_FAST_PATHS=0`) or none of the ways above works (a 3.11 whose private names
moved); `import plugwire` never fails on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from .._seam import eager_task_factory, task_switching

__all__ = ["EagerStarter", "new_starter"]


class EagerStarter(Protocol):
    """Starts coroutines eagerly on one event loop (the contract: this module's docstring)."""

    @property
    def kind(self) -> str:
        """Which way it starts them: `create_task`, `Task`, `carrier` or `plain`."""
        ...

    def start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[Any] | None:
        """Run `coro` up to its first suspension now.

        Returns:
            None when it already finished, else the task that runs the rest of it.

        Raises:
            BaseException: Whatever the first step raised (CancelledError excepted).
        """
        ...

    def close(self) -> None:
        """Release what the starter holds (the server is stopping)."""
        ...


def new_starter(loop: asyncio.AbstractEventLoop) -> EagerStarter:
    """The fastest starter that works on `loop` (which must be running)."""
    native = eager_task_factory(loop)
    if native is not None:
        return _NativeStarter(*native)
    if task_switching() is not None:  # 3.11 (its own module: delete it with 3.11)
        from . import _eager311

        return _eager311.CarrierStarter(loop)
    return _PlainStarter(loop)


NewTask = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[Any]"]


class _NativeStarter:
    """A task per call, started eagerly by asyncio itself."""

    __slots__ = ("_kind", "_new_task")

    def __init__(self, kind: str, new_task: NewTask) -> None:
        self._kind = kind
        self._new_task = new_task

    @property
    def kind(self) -> str:
        return self._kind

    def start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[Any] | None:
        task = self._new_task(coro)
        if not task.done():
            return task
        if not task.cancelled():
            task.result()  # raises the first step's exception: the caller gets it, as on 3.11
        return None

    def close(self) -> None:
        pass  # it holds nothing


class _PlainStarter:
    """The public API's way: a task per call, from the next loop turn (not eager)."""

    __slots__ = ("_loop",)
    kind = "plain"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[Any] | None:
        return self._loop.create_task(coro)

    def close(self) -> None:
        pass  # it holds nothing
