"""Waking the callers of the answers one read delivered, in that read's own callback.

When the event loop's reader callback reads a burst of answers, resolving each call's future
the usual way schedules its caller through the loop: `loop.call_soon`, a `Handle`, and a pass
of the loop's queue later, all of it Python code on the standard library's loops, for every
call. With 64 calls in flight that costs asyncio alone about as much per call as a whole bare
asyncio echo host (`benchmarks/instructions.py`, `wakeups.x64`). `Wakeups` takes each
future's single waiter off the future (the task that awaits it), resolves the future, and
runs the waiter at once, in the waiter's own context, exactly as the loop would have run it,
only without the trip through the loop's queue. The callers resume in the order their answers
arrived; a caller that sends its next request meanwhile has it held back until the last
caller of the read has run, and the requests leave together (`HostConnection._write`).

It applies only to answers read outside any task (the loop's own reader callback, or the
connection flushing its held-back writes): a read inside a task (reading ahead right after a
request) resolves futures the usual way, since no task can be run from inside another (the
connection does not set those answers aside, and `wake` checks again before running any).
A future with no waiter yet, or with more than one, is resolved the usual way too. In the
loop's debug mode nothing is woken early, so its slow-callback reports stay per task.

A future's waiters are read through `_seam.waiters_getter` (a private attribute, probed once).
The plain reference path is `enabled = False` (accelerators off, the probe failed, or debug
mode): the connection then resolves each future as its answer is parsed, and the loop runs
its callers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._seam import waiters_getter

__all__ = ["Wakeups"]

_current_task = asyncio.current_task


class Wakeups:
    """Answers set aside during one read, and the waking of their callers once it is parsed.

    Args:
        loop: The running loop the connection reads on.
    """

    __slots__ = ("_loop", "_waiters", "answers", "enabled", "left")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        waiters = waiters_getter()
        self._waiters: Any = waiters
        #: Whether early wake-ups are used at all (not with the accelerators off, nor in the
        #: loop's debug mode): else answers are resolved as they are parsed, the plain way.
        self.enabled = waiters is not None and not loop.get_debug()
        #: (future, answer) pairs set aside by the read in progress; an answer is the
        #: payload's bytes or the exception the call fails with.
        self.answers: list[tuple[asyncio.Future[Any], Any]] = []
        #: Callers of the batch being woken still to run after the current one: while it is
        #: not 0 the connection holds its writes back, so the batch's requests leave together.
        self.left = 0

    def wake(self) -> None:
        """Resolve the answers set aside, running each one's waiter at once."""
        batch = self.answers.copy()  # (the same list stays: the connection's session appends to it)
        self.answers.clear()
        if _current_task(self._loop) is not None:  # no task can be run from inside another
            for future, answer in batch:
                if not future.done():
                    _resolve(future, answer)
            return
        left = len(batch)
        waiters = self._waiters
        try:
            for future, answer in batch:
                left -= 1
                try:  # C futures hold None without callbacks, Python futures an empty list
                    [(callback, context)] = waiters(future)
                except (TypeError, ValueError, AttributeError):
                    # No waiter yet, or several (or a loop's own kind of future): the usual
                    # way. Or none left, since the caller was cancelled meanwhile (by a caller
                    # woken before it): nothing to do.
                    if not future.done():
                        _resolve(future, answer)
                    continue
                self.left = left
                future.remove_done_callback(callback)
                if type(answer) is bytes:  # `_resolve` inlined: a frame fewer per answer (~0.9% at 64 in flight)
                    future.set_result(answer)
                else:
                    future.set_exception(answer)
                try:
                    context.run(callback, future)  # what the loop's `Handle` would do, later
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # as the loop reports a failing callback
                    self._loop.call_exception_handler(
                        {"message": f"Exception in callback {callback!r}", "exception": exc, "future": future}
                    )
        except BaseException:
            # A woken caller raised SystemExit or KeyboardInterrupt (a task passes them on):
            # the callers not woken yet still get their answers, the usual way.
            for future, answer in batch[len(batch) - left - 1 :]:
                if not future.done():
                    _resolve(future, answer)
            raise
        finally:
            self.left = 0


def _resolve(future: asyncio.Future[Any], answer: Any) -> None:
    if type(answer) is bytes:
        future.set_result(answer)
    else:
        future.set_exception(answer)
