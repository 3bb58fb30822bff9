"""Eager start on Python 3.11, which has no `eager_start`: delete this module with 3.11.

A *carrier* does what 3.12's eager tasks do: a task created ahead of time whose coroutine is
already started (primed), so that it is ready from the moment it exists. A call's first step
runs with the carrier as the current task (`asyncio.tasks._enter_task`, which the module
exports for task implementations); a task that was current (a call started from inside
another task) steps aside for that step and comes back after it, as with 3.12's eager tasks.
If the call suspends, the carrier wakes and drives the rest of it, so the task that
`current_task()` returned is the task that runs the call to its end. Only a call that
suspended (or cancelled its own task) uses up the carrier; a fresh one is made for the next
call. Because the carrier's coroutine is primed inside its `try`, a `cancel()` that reaches
the carrier before its first step still reaches the call.

Calls are sent into a *runner*, a generator that awaits each in turn, rather than stepped with
`coro.send()`: a coroutine that returns under `send()` raises StopIteration, which costs more
than a small call's own work; the runner's `yield from` takes the end without one. A call that
suspends keeps its runner (the carrier drives it), and the next call gets a new one.

The private names come from `_seam.task_switching` (probed once at import, with a sentinel in
place of a loop); `_eager.py` makes a `CarrierStarter` only when that found them working, and
takes the public API's way otherwise.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Coroutine, Generator
from typing import Any, Final

from .._seam import _TASK_SWITCHING

__all__ = ["CarrierStarter"]


_FUNCTIONS: Final = _TASK_SWITCHING
if _FUNCTIONS is not None:  # bound once: these run on every call
    _enter_task, _leave_task, _current_task = _FUNCTIONS
_copy_context = contextvars.copy_context
_CancelledError = asyncio.CancelledError


class CarrierStarter:
    """Starts coroutines eagerly on one event loop, with carrier tasks.

    Args:
        loop: The running loop the calls run on.
    """

    __slots__ = ("_loop", "_runner", "_spare")
    kind = "carrier"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._spare = _Carrier(loop)
        self._runner = _new_runner()

    def start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[Any] | None:
        """Run `coro` up to its first suspension now (the contract: `_eager.EagerStarter`)."""
        loop = self._loop
        carrier = self._spare
        context = _copy_context()  # each call its own, as a task would have
        carried = carrier.task
        runner = self._runner
        outer = _current_task(loop)
        if outer is not None:  # started inside another task: it steps aside, as on 3.12+
            _leave_task(loop, outer)
        _enter_task(loop, carried)
        try:
            # Through the runner, a call that finishes raises no StopIteration here.
            yielded = context.run(runner.send, coro)
        except BaseException as exc:  # out of the call, through the runner, which is spent
            self._runner = _new_runner()
            if carried.cancelling():  # the call cancelled its own task: this carrier is spent
                self._spare = _Carrier(loop)
            if not isinstance(exc, _CancelledError):
                raise  # the first step's exception, to the caller (as on 3.12+)
            return None  # a task would end cancelled, and nobody awaits it
        finally:
            _leave_task(loop, carried)
            if outer is not None:
                _enter_task(loop, outer)
        if yielded is _FINISHED:
            if carried.cancelling():  # the call cancelled its own task: this carrier is spent
                self._spare = _Carrier(loop)
            return None
        # The call suspended: its runner goes with it to the carrier, which drives it to the end.
        self._runner = _new_runner()
        self._spare = _Carrier(loop)
        carrier.hand_over(runner, yielded, context)
        return carried

    def close(self) -> None:
        """Cancel the spare carrier (the server is stopping: no call starts after this)."""
        self._spare.task.cancel()
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


@types.coroutine
def _primed() -> Generator[None, None, None]:
    """Where a carrier's coroutine waits, already started, for its task's first step."""
    yield None


class _Carrier:
    """A task, ready at once, that waits until a call that suspended is handed to it."""

    __slots__ = ("task", "wake", "work")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.wake: asyncio.Future[None] = loop.create_future()
        self.work: tuple[Runner, Any, contextvars.Context] | None = None
        carry = self._carry()
        carry.send(None)  # primed: inside its `try` before the task's first step
        self.task: asyncio.Task[Any] = loop.create_task(carry)

    def hand_over(self, runner: Runner, yielded: Any, context: contextvars.Context) -> None:
        self.work = (runner, yielded, context)
        if not self.wake.done():  # done: the call cancelled its task during its first step
            self.wake.set_result(None)

    async def _carry(self) -> None:
        cancelled = False
        try:
            await _primed()
            await self.wake
        except _CancelledError:
            if self.work is None:
                raise  # cancelled while waiting: there is nothing to run
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
            yielded = context.run(runner.throw, _CancelledError())
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
