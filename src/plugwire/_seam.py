"""The one place that touches asyncio's and CPython's private or version-specific parts.

The call path's accelerators (`docs/hot-path.md`) lean on a few names asyncio does not
promise: a future's list of callbacks, a loop's queue of ready callbacks, its timers, its
epoll object, 3.11's task-switching functions. They are all read here, behind named
functions, and nowhere else (a test greps `src` for them). Each is probed once, at import or
when a loop first asks, with a small behavioural check where one is cheap, and each function
answers with the public API's way (or None: "no accelerator here") when its probe fails, so
`import plugwire` never fails because a private name moved in a new Python.

One switch turns every accelerator off: `PLUGWIRE_FAST_PATHS=0` in the environment (read at
import; the plugin processes a host starts inherit it), or `use_fast_paths(False)` before the
connections and servers are made. Every accelerator is then left to its plain reference path
(`docs/hot-path.md`, "Strategies"), which the tests run beside the fast one.

3.11-only code is marked so and goes with 3.11: `task_switching` here, `_sdk/_eager311.py`.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import os
import selectors
import sys
import time
import warnings
from collections.abc import Callable, Coroutine, Sized
from operator import attrgetter
from typing import Any, Final, NamedTuple, cast

__all__ = [
    "ACCELERATORS",
    "ENV_SWITCH",
    "LoopInternals",
    "cheap_clock",
    "cheap_future_factory",
    "eager_task_factory",
    "fast_paths",
    "loop_internals",
    "ready_queue",
    "task_switching",
    "use_fast_paths",
    "waiters_getter",
]

ENV_SWITCH: Final = "PLUGWIRE_FAST_PATHS"
"""The environment variable: `0` (or `false`, `no`, `off`) turns every accelerator off, `1`
(the default) all on; a comma-separated list of `ACCELERATORS` keeps only those on."""

ACCELERATORS: Final = ("batching", "eager", "idle", "loop", "readahead", "wakeups")
"""The accelerators by name (`docs/hot-path.md`, "Strategies"): write coalescing on both ends,
eager start and the idle wait in the plugin, the loop's clock and futures without their
Python methods, read-ahead and early wake-ups in the host."""

_OFF: Final = frozenset({"0", "false", "no", "off", ""})
_ON: Final = frozenset({"1", "true", "yes", "on"})


def _parse(value: str) -> tuple[frozenset[str], str]:
    """The accelerators `value` turns on, and what is wrong with it ("" when nothing is)."""
    value = value.strip().lower()
    if value in _ON:
        return frozenset(ACCELERATORS), ""
    if value in _OFF:
        return frozenset(), ""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in ACCELERATORS]
    problem = ""
    if unknown:
        hints = [difflib.get_close_matches(name, ACCELERATORS, n=1) for name in unknown]
        said = ", ".join(
            f"{name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            for name, hint in zip(unknown, hints, strict=True)
        )
        problem = (
            f"{ENV_SWITCH}={value!r}: unknown accelerator {said}; known: {', '.join(ACCELERATORS)}, "
            "or 0/1 for all off/on"
        )
    return frozenset(names) & frozenset(ACCELERATORS), problem


class _Switch:
    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on, problem = _parse(os.environ.get(ENV_SWITCH, "1"))
        if problem:  # a typo in the environment must not stop `import plugwire`: said, and ignored
            warnings.warn(f"{problem} (the unknown names are ignored)", RuntimeWarning, stacklevel=1)


_switch: Final = _Switch()


def fast_paths(name: str | None = None) -> bool:
    """Whether accelerator `name` is on (`PLUGWIRE_FAST_PATHS`, unless `use_fast_paths` said
    otherwise); without a name, whether any is."""
    return bool(_switch.on) if name is None else name in _switch.on


def use_fast_paths(enabled: bool | str) -> None:
    """Turn the accelerators on or off (True, False, or a value as `PLUGWIRE_FAST_PATHS` takes)
    for the connections and servers made from now on (tests run both ways; the plugins a host
    starts get the switch through `PLUGWIRE_FAST_PATHS`).

    Raises:
        ValueError: A name that is not one of `ACCELERATORS`.
    """
    on, problem = _parse(enabled if isinstance(enabled, str) else "1" if enabled else "0")
    if problem:
        raise ValueError(problem)
    _switch.on = on


# ------------------------------------------------------------------ the loop's own methods
def cheap_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """What `loop.time` returns, as cheaply as it can be had: `time.monotonic` itself where
    the loop's method only returns it (the standard library's loops), else `loop.time`."""
    if "loop" in _switch.on and type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


def cheap_future_factory(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.Future[Any]]:
    """What `loop.create_future` returns, as cheaply as it can be had (a partial of
    `asyncio.Future`: no Python frame), where that is all the loop's method does."""
    if "loop" in _switch.on and type(loop).create_future is asyncio.BaseEventLoop.create_future:
        return functools.partial(asyncio.Future, loop=loop)
    return loop.create_future


# --------------------------------------------------------------- a future's single waiter
def _probe_waiters() -> Callable[[Any], Any] | None:
    """`future._callbacks`, if it is what it was: a list of (callback, context) pairs on the
    C future and the pure-Python one (None or an empty list when there are none)."""
    getter = attrgetter("_callbacks")
    loop = _NoLoop()
    try:
        for kind in {asyncio.Future, getattr(asyncio.futures, "_PyFuture", asyncio.Future)}:
            future: Any = kind(loop=cast(Any, loop))
            if getter(future):  # none yet: None or []
                return None

            def callback(_: object) -> None: ...

            future.add_done_callback(callback)
            [(taken, context)] = getter(future)
            if taken is not callback or not hasattr(context, "run"):
                return None
            future.remove_done_callback(callback)
    except Exception:
        return None
    return getter


class _NoLoop:
    """All a future asks of its loop until it is resolved."""

    def get_debug(self) -> bool:
        return False


_WAITERS: Final = _probe_waiters()


def waiters_getter() -> Callable[[asyncio.Future[Any]], Any] | None:
    """A C-level getter of a future's waiters (`[(callback, context)]`; None or `[]` for
    none), for running a future's single waiter straight away (`_transports/_wakeups.py`);
    None when the accelerators are off or the probe failed (resolve futures the usual way)."""
    return _WAITERS if "wakeups" in _switch.on else None


# ----------------------------------------------------------- the selector loop's internals
_BASE_SELECTOR_LOOP: Final[Any] = getattr(getattr(asyncio, "selector_events", None), "BaseSelectorEventLoop", ())
_EPOLL_SELECTOR: Final[Any] = getattr(selectors, "EpollSelector", ())
_loop_stopping: Final = attrgetter("_stopping")


def ready_queue(loop: asyncio.AbstractEventLoop) -> Sized | None:
    """The queue of callbacks `loop` runs in this turn, on the standard library's selector
    loops (whose socket transports shrug off a read that finds nothing); else None."""
    if "readahead" not in _switch.on or not isinstance(loop, _BASE_SELECTOR_LOOP):
        return None
    ready = getattr(loop, "_ready", None)
    return ready if isinstance(ready, Sized) else None


class LoopInternals(NamedTuple):
    """What waiting in a standard library loop's own epoll takes (`_sdk/_idle.py`)."""

    ready: Sized
    """The callbacks due in this turn."""
    timers: list[Any]
    """The heap of timer handles (`when()` of the first is the next due)."""
    stopping: Callable[[asyncio.AbstractEventLoop], bool]
    """Whether `loop.stop()` was called (a C-level getter)."""
    poll: Callable[[float], list[tuple[int, int]]]
    """The loop's `epoll.poll` (level-triggered: the loop sees what it saw)."""


def loop_internals(loop: asyncio.AbstractEventLoop) -> LoopInternals | None:
    """The standard library's selector loop on epoll, not in debug mode: its internals; else None."""
    if "idle" not in _switch.on or not isinstance(loop, _BASE_SELECTOR_LOOP) or loop.get_debug():
        return None
    selector = getattr(loop, "_selector", None)
    epoll = getattr(selector, "_selector", None)
    ready = getattr(loop, "_ready", None)
    timers = getattr(loop, "_scheduled", None)
    try:
        stopping = _loop_stopping(loop)
    except AttributeError:
        return None
    if (
        not isinstance(selector, _EPOLL_SELECTOR)
        or not callable(getattr(epoll, "poll", None))
        or not isinstance(ready, Sized)
        or not isinstance(timers, list)
        or not isinstance(stopping, bool)
    ):
        return None
    return LoopInternals(ready, timers, _loop_stopping, cast(Any, epoll).poll)


# -------------------------------------------------------------------------- eager start
NewTask = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[Any]"]


async def _probe_coro() -> None:
    pass


def _starts_eagerly(new_task: NewTask) -> bool:
    """Whether `new_task` runs a coroutine's first step at once (a behavioural check)."""
    coro = _probe_coro()
    try:
        task = new_task(coro)
    except TypeError:  # `eager_start` not taken here
        coro.close()
        return False
    if task.done():
        return True
    task.cancel()  # the keyword was taken and ignored (a task factory, a loop not running)
    return False


def eager_task_factory(loop: asyncio.AbstractEventLoop) -> tuple[str, NewTask] | None:
    """How to make a task that runs its coroutine's first step at once on `loop` (running):
    `loop.create_task(coro, eager_start=True)` (the public API of 3.14, and of uvloops that
    pass the keyword on), else `asyncio.Task(coro, loop=loop, eager_start=True)` (3.12,
    3.13), each tried on the loop; None when neither works (3.11) or the accelerators are off.
    Returns (its name, the factory): a partial, no Python frame per task."""
    if "eager" not in _switch.on:
        return None
    create_task: Any = loop.create_task  # (its `eager_start` is typed only from 3.14)
    task_class: Any = asyncio.Task  # (its `eager_start` is typed only from 3.12)
    for kind, new_task in (
        ("create_task", functools.partial(create_task, eager_start=True)),
        ("Task", functools.partial(task_class, loop=loop, eager_start=True)),
    ):
        if _starts_eagerly(new_task):
            return kind, new_task
    return None


# 3.11 only (delete with 3.11, with `_sdk/_eager311.py`) --------------------------------
TaskSwitching = tuple[Callable[[Any, Any], None], Callable[[Any, Any], None], Callable[[Any], Any]]


def _probe_task_switching() -> TaskSwitching | None:
    """3.11's private task-switching functions and a reader of the current task, if they work."""
    if sys.version_info >= (3, 12):
        return None  # eager tasks are public there
    tasks = asyncio.tasks
    enter = getattr(tasks, "_enter_task", None)
    leave = getattr(tasks, "_leave_task", None)
    current = getattr(tasks, "_current_tasks", None)
    if not callable(enter) or not callable(leave):
        return None
    key, task = object(), object()  # a loop and a task as far as these functions care
    try:
        enter(key, task)
        entered = asyncio.current_task(key) is task  # type: ignore[arg-type]
        leave(key, task)
        left = asyncio.current_task(key) is None  # type: ignore[arg-type]
    except Exception:
        return None
    if not (entered and left):
        return None
    # The map `current_task()` reads, bound once (a call per call fewer), if it is that map.
    getter = current.get if isinstance(current, dict) else asyncio.current_task
    return enter, leave, getter


_TASK_SWITCHING: Final = _probe_task_switching()


def task_switching() -> TaskSwitching | None:
    """(enter_task, leave_task, current_task) on 3.11, when its private names work; else None."""
    return _TASK_SWITCHING if "eager" in _switch.on else None
