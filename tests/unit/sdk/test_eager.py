"""`new_starter`: a call's first step runs at once, and plugin code still sees one real task.

The contract (`_sdk/_eager.py`) is the same on every Python version: these tests run on each,
against the starter `new_starter` picks there (`Task` on 3.12/3.13, `carrier` on 3.11).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
from collections.abc import Coroutine
from typing import Any

import pytest

from plugwire import _seam
from plugwire._sdk import _eager, _eager311
from plugwire._sdk._eager import EagerStarter, new_starter

pytestmark = pytest.mark.fast_paths_only  # the accelerator itself

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="")
EXPECTED_KIND = "Task" if sys.version_info >= (3, 12) else "carrier"


async def a_starter() -> EagerStarter:
    starter = new_starter(asyncio.get_running_loop())  # ready for its first call at once
    assert starter.kind == EXPECTED_KIND
    return starter


async def noop() -> None:
    pass


async def from_callback(starter: EagerStarter, coro: Coroutine[Any, Any, None]) -> asyncio.Task[Any] | None:
    done: asyncio.Future[asyncio.Task[Any] | None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(lambda: done.set_result(starter.start(coro)))
    return await done


async def test_a_call_that_does_not_suspend_finishes_at_once_inside_a_task() -> None:
    starter = await a_starter()
    seen: list[object] = []

    async def call() -> None:
        seen.append(asyncio.current_task())
        async with asyncio.timeout(5):  # needs a current task
            await noop()  # finishes without suspending
            seen.append("timeout ok")

    assert await from_callback(starter, call()) is None
    assert seen[0] is not None
    assert seen[1] == "timeout ok"
    starter.close()


async def test_a_call_that_suspends_is_carried_on_by_the_task_it_started_in() -> None:
    starter = await a_starter()
    seen: list[object] = []
    release = asyncio.Event()

    async def call() -> None:
        seen.append(asyncio.current_task())
        await release.wait()
        seen.append(asyncio.current_task())

    task = await from_callback(starter, call())
    assert task is not None
    assert seen == [task]
    release.set()
    await task
    assert seen == [task, task]
    starter.close()


async def test_each_call_has_its_own_context_variables() -> None:
    starter = await a_starter()
    leaked: list[str] = []

    async def call(value: str, suspend: bool) -> None:
        leaked.append(VAR.get())
        VAR.set(value)
        if suspend:
            await asyncio.sleep(0)
        assert VAR.get() == value

    for i in range(4):
        task = await from_callback(starter, call(str(i), suspend=i % 2 == 1))
        if task is not None:
            await task
    assert leaked == ["", "", "", ""]
    assert VAR.get() == ""
    starter.close()


async def test_cancelling_a_call_before_its_carrier_took_over_cancels_the_call() -> None:
    starter = await a_starter()
    seen: list[str] = []

    async def call() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    tasks: list[asyncio.Task[Any] | None] = []

    def start_and_cancel() -> None:  # both in one callback, like a call and its cancel in one read
        task = starter.start(call())
        assert task is not None
        task.cancel()
        tasks.append(task)
        done.set_result(None)

    asyncio.get_running_loop().call_soon(start_and_cancel)
    await done
    task = tasks[0]
    assert task is not None
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    starter.close()


async def test_asyncio_timeout_in_a_suspended_call_cancels_that_call() -> None:
    starter = await a_starter()
    seen: list[str] = []

    async def call() -> None:
        try:
            async with asyncio.timeout(0):
                await asyncio.Event().wait()
        except TimeoutError:
            seen.append("timed out")

    task = await from_callback(starter, call())
    assert task is not None
    await task
    assert seen == ["timed out"]
    starter.close()


async def test_a_call_that_cancels_its_own_task_is_cancelled_and_the_next_call_still_runs() -> None:
    starter = await a_starter()
    seen: list[str] = []

    async def self_cancelling() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    first = await from_callback(starter, self_cancelling())
    assert first is not None
    with pytest.raises(asyncio.CancelledError):
        await first
    assert seen == ["cancelled"]

    async def plain() -> None:
        seen.append("next")

    second = await from_callback(starter, plain())
    if second is not None:
        await second
    assert seen == ["cancelled", "next"]
    starter.close()


async def test_started_from_inside_another_task_a_call_runs_at_once_in_its_own_task() -> None:
    starter = await a_starter()
    outer = asyncio.current_task()
    seen: list[object] = []

    async def call() -> None:
        seen.append(asyncio.current_task())
        async with asyncio.timeout(5):  # needs a current task
            await noop()  # finishes without suspending
            seen.append("timeout ok")

    assert starter.start(call()) is None  # finished before `start` returned, as from a callback
    assert len(seen) == 2
    assert seen[0] is not None
    assert seen[0] is not outer
    assert asyncio.current_task() is outer  # the outer task is current again
    starter.close()


async def test_started_from_inside_another_task_a_call_that_suspends_is_carried_on_and_the_outer_task_goes_on() -> None:
    starter = await a_starter()
    outer = asyncio.current_task()
    seen: list[object] = []
    release = asyncio.Event()

    async def call() -> None:
        seen.append(asyncio.current_task())
        await release.wait()
        seen.append(asyncio.current_task())

    task = starter.start(call())
    assert task is not None
    assert seen == [task]  # the first step ran before `start` returned
    assert task is not outer
    assert asyncio.current_task() is outer
    release.set()
    await task
    assert seen == [task, task]
    starter.close()


async def test_the_first_call_of_a_new_starter_and_calls_started_in_one_read_all_start_at_once() -> None:
    starter = new_starter(asyncio.get_running_loop())  # no loop turn since it was made
    started: list[int] = []
    release = asyncio.Event()

    async def call(i: int) -> None:
        started.append(i)
        await release.wait()

    tasks = [starter.start(call(i)) for i in range(3)]  # each suspends: three carriers on 3.11
    assert started == [0, 1, 2]
    assert all(task is not None for task in tasks)
    assert len({id(task) for task in tasks}) == 3
    release.set()
    for task in tasks:
        assert task is not None
        await task
    starter.close()


async def test_a_call_cancelled_in_the_read_that_started_it_sees_the_cancellation() -> None:
    starter = await a_starter()
    seen: list[str] = []

    async def call(i: int) -> None:
        seen.append(f"started {i}")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append(f"cancelled {i}")
            raise

    done: asyncio.Future[list[asyncio.Task[Any] | None]] = asyncio.get_running_loop().create_future()

    def start_two_and_cancel_both() -> None:  # the second goes to a carrier made in this read
        tasks = [starter.start(call(1)), starter.start(call(2))]
        for task in tasks:
            assert task is not None
            task.cancel()
        done.set_result(tasks)

    asyncio.get_running_loop().call_soon(start_two_and_cancel_both)
    for task in await done:
        assert task is not None
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen[:2] == ["started 1", "started 2"]  # each started in the read
    assert sorted(seen[2:]) == ["cancelled 1", "cancelled 2"]
    starter.close()


async def test_a_call_that_cancels_its_own_task_and_finishes_at_once_leaves_the_next_call_a_live_task() -> None:
    starter = await a_starter()
    seen: list[object] = []

    async def self_cancelling() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        seen.append("cancel asked")

    async def suspending() -> None:
        await asyncio.sleep(0)
        seen.append("resumed")

    assert await from_callback(starter, self_cancelling()) is None
    task = await from_callback(starter, suspending())
    assert task is not None
    await task  # not cancelled: a task of its own
    assert seen == ["cancel asked", "resumed"]
    starter.close()


async def test_a_call_that_raises_in_its_first_step_raises_from_start_and_the_next_call_runs() -> None:
    starter = await a_starter()
    seen: list[str] = []

    async def failing() -> None:
        raise LookupError("first step")

    async def plain() -> None:
        seen.append("next")

    raised: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def start_failing() -> None:  # in a loop callback, as a read is
        try:
            starter.start(failing())
        except LookupError as exc:
            raised.set_result(exc)

    asyncio.get_running_loop().call_soon(start_failing)
    assert str(await raised) == "first step"
    assert await from_callback(starter, plain()) is None  # finished at once, on a fresh runner
    assert seen == ["next"]
    starter.close()


async def test_a_call_that_raises_in_its_first_step_inside_another_task_raises_from_start_too() -> None:
    starter = await a_starter()
    outer = asyncio.current_task()
    lost: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: lost.append(context))

    async def failing() -> None:
        raise LookupError("first step")

    with pytest.raises(LookupError, match="first step"):
        starter.start(failing())
    assert asyncio.current_task() is outer
    del failing
    gc.collect()  # a task left holding the exception would be reported now
    assert lost == []
    starter.close()


async def test_a_call_that_raises_after_suspending_fails_its_task_and_the_next_call_runs() -> None:
    starter = await a_starter()
    seen: list[str] = []

    async def failing() -> None:
        await asyncio.sleep(0)
        raise LookupError("later step")

    async def plain() -> None:
        seen.append("next")

    task = await from_callback(starter, failing())
    assert task is not None
    with pytest.raises(LookupError, match="later step"):
        await task
    for _ in range(2):  # a call that finishes at once, on the runner that replaced the first
        assert await from_callback(starter, plain()) is None
    assert seen == ["next", "next"]
    starter.close()


# ---------------------------------------------------------------- how the starter is picked


async def test_without_an_eager_way_the_public_api_runs_each_call_in_a_task_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_eager, "eager_task_factory", lambda loop: None)  # as if no `eager_start`
    monkeypatch.setattr(_eager, "task_switching", lambda: None)  # as if 3.11's private names moved
    starter = new_starter(asyncio.get_running_loop())
    assert starter.kind == "plain"
    seen: list[object] = []

    async def call() -> None:
        seen.append(asyncio.current_task())

    async def failing() -> None:
        raise LookupError("first step")

    task = starter.start(call())
    assert task is not None
    await task
    assert seen == [task]
    failed = starter.start(failing())
    assert failed is not None
    with pytest.raises(LookupError, match="first step"):  # in the task, read by its owner
        await failed
    starter.close()


async def test_with_the_accelerators_off_the_starter_is_the_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_seam._switch, "on", frozenset())  # as `PLUGWIRE_FAST_PATHS=0` does
    starter = new_starter(asyncio.get_running_loop())
    assert starter.kind == "plain"
    task = starter.start(noop())
    assert task is not None  # started on the next loop turn, in a task of its own
    await task
    starter.close()


def test_the_311_probe_refuses_task_switching_names_that_moved_or_misbehave(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.delattr(asyncio.tasks, "_enter_task")
        assert _seam._probe_task_switching() is None
    with monkeypatch.context() as patch:
        patch.setattr(asyncio.tasks, "_enter_task", lambda loop, task: None)  # enters nothing
        assert _seam._probe_task_switching() is None
    with monkeypatch.context() as patch:
        patch.setattr(asyncio.tasks, "_leave_task", lambda loop, task: 1 / 0)
        assert _seam._probe_task_switching() is None
    if sys.version_info < (3, 12):
        assert _seam._probe_task_switching() is not None  # the real ones work
        assert _eager311._FUNCTIONS is not None


class _LoopWithEagerCreateTask(asyncio.SelectorEventLoop):
    """A loop whose `create_task` takes `eager_start`, as Python 3.14's do."""

    def __init__(self, honour: bool) -> None:
        super().__init__()
        self.honour = honour
        self.eager_tasks = 0

    def create_task(self, coro: Any, *, eager_start: bool = False, **kwargs: Any) -> asyncio.Task[Any]:
        if not (eager_start and self.honour):
            return super().create_task(coro, **kwargs)
        self.eager_tasks += 1
        task_class: Any = asyncio.Task
        task: asyncio.Task[Any] = task_class(coro, loop=self, eager_start=True, **kwargs)
        return task


@pytest.mark.skipif(sys.version_info < (3, 12), reason="`eager_start` exists from Python 3.12")
@pytest.mark.parametrize(("honour", "kind"), [(True, "create_task"), (False, "Task")])
def test_a_loop_whose_create_task_starts_eagerly_is_used_that_way(honour: bool, kind: str) -> None:
    loop = _LoopWithEagerCreateTask(honour)
    seen: list[object] = []

    async def call() -> None:
        seen.append(asyncio.current_task())

    async def failing() -> None:
        raise LookupError("first step")

    async def main() -> None:
        starter = new_starter(loop)
        assert starter.kind == kind
        assert starter.start(call()) is None
        assert len(seen) == 1
        assert seen[0] is not None
        with pytest.raises(LookupError, match="first step"):
            starter.start(failing())
        starter.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert loop.eager_tasks == (3 if honour else 0)  # the probe's task, then both calls


def test_on_uvloop_calls_start_eagerly_too() -> None:
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    seen: list[object] = []

    async def call() -> None:
        seen.append(asyncio.current_task())

    async def main() -> None:
        starter = new_starter(loop)
        # (recent uvloops pass `eager_start` on to the task, older ones refuse it)
        assert starter.kind in (("create_task", "Task") if sys.version_info >= (3, 12) else ("carrier",))
        assert await from_callback(starter, call()) is None
        assert seen[0] is not None
        starter.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
