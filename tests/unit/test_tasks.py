"""TaskOwner: the task owner of every long-lived object (pool, transport, monitor, watcher, manager)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from plugwire._tasks import TaskOwner


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What the running loop's exception handler is told (an unretrieved task exception, say)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    yield reported
    loop.set_exception_handler(None)


async def test_a_task_that_ends_leaves_the_owner_so_it_does_not_grow() -> None:
    owner = TaskOwner("test")
    for _ in range(500):
        task = owner.start(asyncio.sleep(0), name="short")
        await task
    await asyncio.sleep(0)  # the last task's done callback
    assert len(owner) == 0
    assert owner.tasks() == []
    await owner.aclose()


async def test_a_failed_task_is_logged_once_with_the_owner_and_task_names_and_reported(
    caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]
) -> None:
    owner = TaskOwner("pool 'echo'")
    seen: list[BaseException] = []

    async def boom() -> None:
        raise ValueError("reader broke")

    with caplog.at_level(logging.ERROR, logger="plugwire.tasks"):
        task = owner.start(boom(), name="reader", on_error=seen.append)
        await asyncio.wait([task])  # not awaited itself: nobody else retrieves its exception
        await asyncio.sleep(0)
    failures = [r for r in caplog.records if r.name == "plugwire.tasks"]
    assert len(failures) == 1
    assert failures[0].getMessage() == "pool 'echo': task 'reader' failed"
    assert failures[0].exc_info is not None
    assert isinstance(failures[0].exc_info[1], ValueError)
    assert [type(e) for e in seen] == [ValueError]
    del task
    gc.collect()  # an unretrieved exception would be reported to the loop here
    assert loop_errors == []
    await owner.aclose()


async def test_a_failing_error_handler_is_logged_and_does_not_reach_the_loop(
    caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]
) -> None:
    owner = TaskOwner("monitor")

    def handler(exc: BaseException) -> None:
        raise RuntimeError("handler bug")

    async def boom() -> None:
        raise ValueError("x")

    with caplog.at_level(logging.ERROR, logger="plugwire.tasks"):
        await asyncio.wait([owner.start(boom(), name="check", on_error=handler)])
        await asyncio.sleep(0)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["monitor: task 'check' failed", "monitor: the error handler of task 'check' raised"]
    assert loop_errors == []
    await owner.aclose()


async def test_a_cancelled_task_is_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("t")
    seen: list[BaseException] = []
    task = owner.start(asyncio.sleep(10), name="sleeper", on_error=seen.append)
    await asyncio.sleep(0)
    task.cancel()
    with caplog.at_level(logging.DEBUG, logger="plugwire.tasks"):
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert caplog.records == []
    assert seen == []
    assert len(owner) == 0


async def test_aclose_cancels_and_awaits_every_task() -> None:
    owner = TaskOwner("t")
    cleaned: list[str] = []

    async def forever(tag: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits: aclose waits for it
            cleaned.append(tag)

    tasks = [owner.start(forever(str(i)), name=f"loop {i}") for i in range(3)]
    await asyncio.sleep(0)
    await owner.aclose()
    assert sorted(cleaned) == ["0", "1", "2"]
    assert all(task.cancelled() for task in tasks)
    assert len(owner) == 0
    assert owner.closed


async def test_aclose_is_idempotent_and_start_afterwards_is_refused() -> None:
    owner = TaskOwner("pool 'echo'")
    await owner.aclose()
    await owner.aclose()

    async def work() -> None:  # pragma: no cover - never runs
        raise AssertionError

    coro = work()
    with pytest.raises(RuntimeError, match=r"pool 'echo' is closed: cannot start task 'grow'"):
        owner.start(coro, name="grow")
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # so no "never awaited" warning either
    assert len(owner) == 0


async def test_concurrent_acloses_both_wait_for_the_tasks() -> None:
    owner = TaskOwner("t")
    release = asyncio.Event()
    done: list[bool] = []

    async def stopping() -> None:
        await release.wait()
        done.append(True)

    owner.start(stopping(), name="stop", shielded=True)
    first = asyncio.ensure_future(owner.aclose())
    second = asyncio.ensure_future(owner.aclose())
    await asyncio.sleep(0)
    assert not first.done()
    assert not second.done()
    release.set()
    await asyncio.gather(first, second)
    assert done == [True]


async def test_a_shielded_task_is_awaited_not_cancelled() -> None:
    owner = TaskOwner("pool")
    release = asyncio.Event()
    finished: list[str] = []

    async def stop_process() -> None:
        await release.wait()
        finished.append("stopped")

    task = owner.start(stop_process(), name="stop worker", shielded=True)
    closing = asyncio.ensure_future(owner.aclose())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.cancelled()
    assert not closing.done()
    release.set()
    await closing
    assert finished == ["stopped"]


async def test_a_shielded_task_past_the_close_timeout_is_cancelled_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = TaskOwner("pool", close_timeout=0.01)
    task = owner.start(asyncio.Event().wait(), name="slow stop", shielded=True)
    with caplog.at_level(logging.WARNING, logger="plugwire.tasks"):
        await owner.aclose()
    assert task.cancelled()
    assert [r.getMessage() for r in caplog.records] == [
        "pool: task 'slow stop' still running 0.01s after close began; cancelling it"
    ]


async def test_a_task_that_ignores_cancellation_is_named_and_aclose_still_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = TaskOwner("watcher", close_timeout=0.01)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    task = owner.start(stubborn(), name="poll")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="plugwire.tasks"):
        await owner.aclose()
    assert [r.getMessage() for r in caplog.records] == [
        "watcher: task 'poll' ignores cancellation; left running after 0.01s"
    ]
    assert not task.done()
    assert owner.tasks() == [task]
    release.set()
    await task
    await asyncio.sleep(0)
    assert len(owner) == 0


async def test_aclose_from_one_of_its_own_tasks_skips_that_task() -> None:
    owner = TaskOwner("manager")
    other = owner.start(asyncio.Event().wait(), name="other")

    async def shutdown() -> str:
        await owner.aclose()
        return "closed"

    task = owner.start(shutdown(), name="shutdown", shielded=True)
    assert await task == "closed"
    assert other.cancelled()


async def test_task_names_carry_the_owner_name() -> None:
    owner = TaskOwner("health 'echo'")
    task = owner.start(asyncio.sleep(0), name="checks")
    assert task.get_name() == "health 'echo': checks"
    await owner.aclose()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are Python 3.12+")
async def test_under_an_eager_task_factory_a_task_that_ends_at_once_leaves_the_owner_and_is_logged(
    caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    try:
        owner = TaskOwner("eager")
        seen: list[BaseException] = []

        async def boom() -> None:
            raise ValueError("at once")

        with caplog.at_level(logging.ERROR, logger="plugwire.tasks"):
            owner.start(boom(), name="boom", on_error=seen.append)  # ran (and failed) inside start()
            for _ in range(50):
                owner.start(asyncio.sleep(0, "done"), name="short")
            await asyncio.sleep(0.01)
        assert len(owner) == 0
        assert [r.getMessage() for r in caplog.records] == ["eager: task 'boom' failed"]
        assert [type(e) for e in seen] == [ValueError]
        await owner.aclose()
    finally:
        loop.set_task_factory(None)
    assert loop_errors == []
