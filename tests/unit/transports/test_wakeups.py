"""`_transports/_wakeups.py`: the callers of one read's answers resume inside that read's
callback, in order, each in its own task and context, and nothing is lost on the odd paths
(a caller cancelled meanwhile, a caller that stops the loop, a waiter that is not a task)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import msgspec
import pytest

import plugwire
from plugwire._transports._wakeups import Wakeups
from tests.support.procguard import manager_for, python_plugin

pytestmark = [pytest.mark.timeout(30), pytest.mark.fast_paths_only]  # the accelerator itself

_who = contextvars.ContextVar("who", default="nobody")


async def _waiting(count: int) -> tuple[list[asyncio.Future[Any]], list[asyncio.Task[Any]], list[str]]:
    """`count` tasks, each awaiting its own future and noting when it resumes."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(count)]
    events: list[str] = []

    async def caller(index: int) -> Any:
        _who.set(f"caller {index}")
        answer = await futures[index]
        events.append(f"{_who.get()} got {answer!r} in {asyncio.current_task() is tasks[index]}")
        return answer

    tasks = [asyncio.create_task(caller(i)) for i in range(count)]
    await asyncio.sleep(0)  # each task now waits on its future
    assert all(len(f._callbacks) == 1 for f in futures)  # type: ignore[attr-defined]
    return futures, tasks, events


async def _in_a_loop_callback(work: Any) -> Any:
    """Run `work()` as a plain callback of the loop (no task running), as a reader callback is."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def run() -> None:
        try:
            done.set_result(work())
        except BaseException as exc:  # handed to the test
            done.set_exception(exc)

    loop.call_soon(run)
    return await done


async def test_callers_resume_inside_the_read_callback_in_order_each_as_its_task() -> None:
    loop = asyncio.get_running_loop()
    futures, tasks, events = await _waiting(3)
    wakeups = Wakeups(loop)
    assert wakeups.enabled

    def read() -> list[str]:
        loop.call_soon(events.append, "a callback queued before the wake-ups")
        wakeups.answers.extend([(futures[0], b"a"), (futures[1], b"b"), (futures[2], b"c")])
        wakeups.wake()
        return list(events)  # what had run by the time the read's callback returned

    seen = await _in_a_loop_callback(read)
    assert seen == ["caller 0 got b'a' in True", "caller 1 got b'b' in True", "caller 2 got b'c' in True"]
    assert await asyncio.gather(*tasks) == [b"a", b"b", b"c"]
    assert events[3] == "a callback queued before the wake-ups"
    assert wakeups.answers == []
    assert wakeups.left == 0


async def test_while_a_caller_runs_the_callers_after_it_are_counted_as_due() -> None:
    # The connection holds a caller's request back while `left` is not 0, so a read's callers
    # send their next requests together.
    loop = asyncio.get_running_loop()
    wakeups = Wakeups(loop)
    seen: list[int] = []

    async def caller(future: asyncio.Future[Any]) -> None:
        await future
        seen.append(wakeups.left)

    futures = [loop.create_future() for _ in range(4)]
    tasks = [asyncio.create_task(caller(f)) for f in futures]
    await asyncio.sleep(0)
    wakeups.answers.extend((future, b"y") for future in futures)
    await _in_a_loop_callback(wakeups.wake)
    await asyncio.gather(*tasks)
    assert seen == [3, 2, 1, 0]
    assert wakeups.left == 0


async def test_an_error_answer_is_raised_in_its_caller() -> None:
    loop = asyncio.get_running_loop()
    futures, tasks, _ = await _waiting(2)
    wakeups = Wakeups(loop)
    wakeups.answers.extend([(futures[0], ValueError("refused")), (futures[1], b"fine")])
    await _in_a_loop_callback(wakeups.wake)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], ValueError)
    assert str(results[0]) == "refused"
    assert results[1] == b"fine"


async def test_inside_a_task_the_answers_are_delivered_the_usual_way() -> None:
    loop = asyncio.get_running_loop()
    futures, tasks, events = await _waiting(2)
    wakeups = Wakeups(loop)
    wakeups.answers.extend([(futures[0], b"1"), (futures[1], b"2")])
    wakeups.wake()  # this test's own task is running: nobody can be woken from here
    assert events == []  # nothing resumed yet
    assert await asyncio.gather(*tasks) == [b"1", b"2"]


async def test_a_caller_cancelled_by_one_woken_before_it_is_cancelled_not_answered() -> None:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(2)]
    second: asyncio.Task[Any] | None = None

    async def first() -> Any:
        answer = await futures[0]
        assert second is not None
        second.cancel()  # as a TaskGroup does when a sibling fails
        return answer

    first_task = asyncio.create_task(first())
    second = asyncio.create_task(asyncio.wait_for(futures[1], None))  # its own task awaits the future
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    wakeups = Wakeups(loop)
    wakeups.answers.extend([(futures[0], b"one"), (futures[1], b"two")])
    await _in_a_loop_callback(wakeups.wake)
    assert await first_task == b"one"
    with pytest.raises(asyncio.CancelledError):
        await second
    assert futures[1].cancelled()


async def test_a_caller_that_stops_the_loop_leaves_the_others_answered() -> None:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(3)]

    async def stops() -> None:
        await futures[0]
        raise SystemExit(3)  # a task passes SystemExit on to whoever ran its step

    async def waits(future: asyncio.Future[Any]) -> Any:
        return await future

    stopping = asyncio.create_task(stops())
    others = [asyncio.create_task(waits(f)) for f in futures[1:]]
    await asyncio.sleep(0)
    wakeups = Wakeups(loop)
    wakeups.answers.extend([(futures[0], b"go"), (futures[1], b"b"), (futures[2], b"c")])
    with pytest.raises(SystemExit):
        await _in_a_loop_callback(wakeups.wake)
    assert all(f.done() for f in futures)
    assert await asyncio.gather(*others) == [b"b", b"c"]
    assert stopping.done()
    with pytest.raises(SystemExit):
        stopping.result()
    assert wakeups.left == 0


async def test_a_waiter_that_is_not_a_task_and_fails_is_reported_like_a_failing_callback() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        future: asyncio.Future[Any] = loop.create_future()

        def waiter(_: asyncio.Future[Any]) -> None:
            raise RuntimeError("broken waiter")

        future.add_done_callback(waiter)
        wakeups = Wakeups(loop)
        wakeups.answers.append((future, b"x"))
        await _in_a_loop_callback(wakeups.wake)
    finally:
        loop.set_exception_handler(previous)
    assert future.result() == b"x"
    assert len(reported) == 1
    assert isinstance(reported[0]["exception"], RuntimeError)
    assert reported[0]["future"] is future


async def test_pure_python_futures_are_woken_the_same_way() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = asyncio.futures._PyFuture(loop=loop)  # type: ignore[attr-defined]
    events: list[str] = []

    async def caller() -> Any:
        answer = await future
        events.append("resumed")
        return answer

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)
    wakeups = Wakeups(loop)
    wakeups.answers.append((future, b"py"))

    def read() -> list[str]:
        wakeups.wake()
        return list(events)

    assert await _in_a_loop_callback(read) == ["resumed"]
    assert await task == b"py"


def test_in_debug_mode_nothing_is_woken_early() -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.set_debug(True)
        assert not Wakeups(loop).enabled
        loop.set_debug(False)
        assert Wakeups(loop).enabled
    finally:
        loop.close()


# ------------------------------------------------------------------ with a real plugin
class _Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


class _Resp(msgspec.Struct):
    text: str
    pid: int = 0


def _is_task_wakeup(callback: Any) -> bool:
    return isinstance(getattr(callback, "__self__", None), asyncio.Task)


@pytest.mark.usefixtures("no_leaks")
async def test_many_callers_of_a_real_plugin_are_woken_without_the_loops_queue() -> None:
    loop = asyncio.get_running_loop()
    scheduled: list[Any] = []
    call_soon = loop.call_soon

    def counting(callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        if _is_task_wakeup(callback):
            scheduled.append(callback)
        return call_soon(callback, *args, context=context)

    config = plugwire.PluginConfig(name="echo")
    async with manager_for(_Req, _Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config)
        await manager.execute("echo", _Req(text="warm"))

        async def caller(index: int) -> list[str]:
            return [(await manager.execute("echo", _Req(text=f"{index}.{n}"))).text for n in range(8)]

        loop.call_soon = counting  # type: ignore[method-assign]  # C futures look it up on the loop
        try:
            answers = await asyncio.gather(*(caller(i) for i in range(64)))
        finally:
            del loop.call_soon  # the class's method again
    assert answers == [[f"{i}.{n}" for n in range(8)] for i in range(64)]
    # 512 calls; the usual way schedules one wake-up per call through the loop's queue.
    assert len(scheduled) < 512 // 4, f"{len(scheduled)} wake-ups went through the loop's queue"


@pytest.mark.usefixtures("no_leaks")
async def test_a_caller_that_cancels_its_siblings_leaves_the_connection_working() -> None:
    # When one caller's answer arrives, it cancels every other caller: some of those have
    # answers in the same read (already set aside), some are still waiting on the plugin.
    async with manager_for(_Req, _Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=plugwire.PluginConfig(name="echo"))
        await manager.execute("echo", _Req(text="warm"))
        tasks: list[asyncio.Task[Any]] = []

        async def first() -> str:
            answer = await manager.execute("echo", _Req(text="first"))
            for task in tasks[1:]:
                task.cancel()
            return answer.text

        async def other(index: int) -> str:
            return (await manager.execute("echo", _Req(text=str(index)))).text

        tasks.append(asyncio.create_task(first()))
        tasks.extend(asyncio.create_task(other(i)) for i in range(1, 64))
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        assert results[0] == "first"
        for index, result in enumerate(results[1:], start=1):
            assert result == str(index) or isinstance(result, asyncio.CancelledError)
        assert (await manager.execute("echo", _Req(text="after"))).text == "after"
