"""`EagerStarter`: a call's first step runs at once, and plugin code still sees one real task."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

import pytest

from plugwire._sdk._eager import EagerStarter

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="")


async def starter_with_a_parked_carrier() -> EagerStarter:
    starter = EagerStarter(asyncio.get_running_loop())
    first = starter.start(noop())  # on 3.11 the first call goes the plain way and parks a carrier
    if first is not None:
        await first
    return starter


async def noop() -> None:
    pass


async def from_callback(starter: EagerStarter, coro: Coroutine[Any, Any, None]) -> asyncio.Task[Any] | None:
    done: asyncio.Future[asyncio.Task[Any] | None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(lambda: done.set_result(starter.start(coro)))
    return await done


async def test_a_call_that_does_not_suspend_finishes_at_once_inside_a_task() -> None:
    starter = await starter_with_a_parked_carrier()
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
    starter = await starter_with_a_parked_carrier()
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
    starter = await starter_with_a_parked_carrier()
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
    starter = await starter_with_a_parked_carrier()
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
    starter = await starter_with_a_parked_carrier()
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
    starter = await starter_with_a_parked_carrier()
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


async def test_started_from_inside_another_task_a_call_still_runs_in_its_own_task() -> None:
    starter = await starter_with_a_parked_carrier()
    outer = asyncio.current_task()
    seen: list[object] = []

    async def call() -> None:
        seen.append(asyncio.current_task())

    task = starter.start(call())
    if task is not None:
        await task
    assert len(seen) == 1
    assert seen[0] is not None
    assert seen[0] is not outer
    starter.close()


async def test_a_call_that_raises_in_its_first_step_raises_from_start_and_the_next_call_runs() -> None:
    starter = await starter_with_a_parked_carrier()
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


async def test_a_call_that_raises_after_suspending_fails_its_task_and_the_next_call_runs() -> None:
    starter = await starter_with_a_parked_carrier()
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
