"""Starting a call's coroutine at once, in the read that delivered it, inside a real task.

A call that answers without suspending (most of them) then costs no task creation and no
extra event-loop turn: on one CPU that turn, and the process switches around it, are a third
of a small round trip. Plugin code must not notice: `asyncio.current_task()` is a real task
for the whole call, `asyncio.timeout()` and `TaskGroup` work, each call has its own copy of
the context variables, and `cancel()` on the task cancels the call.

Python 3.12+ does this itself (`asyncio.Task(..., eager_start=True)`). On 3.11 a *carrier*
does it: a task created ahead of time and parked on a future. The call's first step runs
with the carrier as the current task (`asyncio.tasks._enter_task`, which the module exports
for task implementations); if the call suspends, the carrier wakes and drives the rest of it,
so the task that `current_task()` returned is the task that runs the call to its end. Only
a call that suspended uses up the carrier; a fresh one is parked for the next call. Calls are
sent into a *runner*, a generator that awaits each in turn, rather than stepped with
`coro.send()`: a coroutine that returns under `send()` raises StopIteration, which costs more
than a small call's own work; the runner's `yield from` takes the end without one. A call that
suspends keeps its runner (the carrier drives it), and the next call gets a new one.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from collections.abc import Coroutine, Generator
from typing import Any, Final

__all__ = ["EagerStarter"]

_NATIVE: Final = sys.version_info >= (3, 12)
# Bound once: these run on every call. `_current_tasks` is the map `current_task()` reads.
_copy_context = contextvars.copy_context
_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task
_current_tasks: dict[Any, Any] = getattr(asyncio.tasks, "_current_tasks", {})  # used before 3.12 only


class EagerStarter:
    """Starts coroutines eagerly on one event loop.

    Args:
        loop: The running loop the calls run on.
    """

    __slots__ = ("_loop", "_runner", "_spare")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._spare: _Carrier | None = None
        self._runner = _new_runner() if not _NATIVE else None

    def start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[Any] | None:
        """Run `coro` up to its first suspension now.

        Returns:
            None when it already finished, else the task that runs the rest of it.
        """
        loop = self._loop
        if _NATIVE:
            task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
            return None if task.done() else task
        carrier = self._spare
        if carrier is None or not carrier.parked or _current_tasks.get(loop) is not None:
            # No carrier ready yet (the first call, or one parked this turn), or we are
            # inside another task (frames released from a finishing call): the plain way.
            if carrier is None:
                self._spare = _Carrier(loop)
            return loop.create_task(coro)
        context = _copy_context()  # each call its own, as a task would have
        carried = carrier.task
        runner = self._runner
        assert runner is not None  # (made where tasks cannot start eagerly themselves)
        _enter_task(loop, carried)
        try:
            # Through the runner, a call that finishes raises no StopIteration here.
            yielded = context.run(runner.send, coro)
        except BaseException as exc:  # out of the call, through the runner, which is spent
            self._runner = _new_runner()
            if not isinstance(exc, asyncio.CancelledError):
                raise
            yielded = _FINISHED  # a task would end cancelled, and nobody awaits it
        finally:
            _leave_task(loop, carried)
        if yielded is _FINISHED:
            if carrier.wake.done():  # the call cancelled its own task: this carrier is spent
                self._spare = _Carrier(loop)
            return None
        # The call suspended: its runner goes with it to the carrier, which drives it to the end.
        self._runner = _new_runner()
        self._spare = _Carrier(loop)
        carrier.hand_over(runner, yielded, context)
        return carrier.task

    def close(self) -> None:
        """Cancel the parked carrier (the server is stopping)."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.task.cancel()
        if self._runner is not None:
            self._runner.close()


_FINISHED: Final = object()
"""What a runner yields once its call finished."""

Runner = Generator[Any, Any, None]


@types.coroutine
def _run_calls() -> Runner:
    """Runs each coroutine sent to it up to its end, then yields `_FINISHED` and waits for the
    next. A coroutine run by `send` raises StopIteration when it returns, which costs more than
    the call's own work; awaited here it hands its end back without one (`yield from`)."""
    coro = yield None
    while True:
        yield from coro
        coro = yield _FINISHED


def _new_runner() -> Runner:
    runner = _run_calls()
    runner.send(None)  # waiting for its first coroutine
    return runner


class _Carrier:
    """A task parked until a call that suspended is handed to it."""

    __slots__ = ("parked", "task", "wake", "work")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.parked = False
        self.wake: asyncio.Future[None] = loop.create_future()
        self.work: tuple[Runner, Any, contextvars.Context] | None = None
        self.task: asyncio.Task[Any] = loop.create_task(self._carry())

    def hand_over(self, runner: Runner, yielded: Any, context: contextvars.Context) -> None:
        self.work = (runner, yielded, context)
        if not self.wake.done():  # done: the call cancelled its task during its first step
            self.wake.set_result(None)

    async def _carry(self) -> None:
        self.parked = True
        cancelled = False
        try:
            await self.wake
        except asyncio.CancelledError:
            if self.work is None:
                raise  # cancelled while parked: there is nothing to run
            cancelled = True  # the call was cancelled before the carrier took it over
        assert self.work is not None
        runner, yielded, context = self.work
        self.work = None
        await _drive(runner, yielded, context, cancelled)


@types.coroutine
def _drive(runner: Runner, yielded: Any, context: contextvars.Context, cancelled: bool) -> Runner:
    """Continue a call that suspended on `yielded`, each step in its own `context`, until its
    runner reports it finished."""
    if cancelled:
        if asyncio.isfuture(yielded):
            yielded.cancel()  # as Task.cancel() does: the awaited future raises CancelledError
        else:
            yielded = context.run(runner.throw, asyncio.CancelledError())
    while yielded is not _FINISHED:
        try:
            sent = yield yielded
        except GeneratorExit:
            runner.close()
            raise
        except BaseException as exc:  # thrown in by the task: cancellation, mostly
            yielded = context.run(runner.throw, exc)
        else:
            yielded = context.run(runner.send, sent)
    runner.close()  # it waits for a next call that goes to another runner
