"""`WorkerThreads`, the default pool of plain `def` calls: bounded, lazy, context-copying.

Real threads, judged by events and barriers, never by the clock: calls that wait for each
other (a barrier only all of them together can pass) must each get a thread up to the bound,
and never one more.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from plugwire._sdk import _workers
from plugwire._sdk._workers import WorkerThreads, default_max_threads

# The worker pool is no accelerator: once, fast (run twice in a row, a worker of the first run
# may still be ending when the second counts threads by name).
pytestmark = pytest.mark.fast_paths_only

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="unset")


def workers_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


async def test_a_context_variable_the_caller_set_is_seen_in_the_thread() -> None:
    threads = WorkerThreads(2)
    try:
        REQUEST_ID.set("from the caller")
        assert await threads.run(REQUEST_ID.get) == "from the caller"
    finally:
        threads.shutdown()


async def test_each_call_runs_in_a_copy_of_its_own_callers_context() -> None:
    threads = WorkerThreads(2)
    both_in = threading.Barrier(2, timeout=20)

    def read_set_read() -> tuple[str, str]:
        seen = REQUEST_ID.get()
        both_in.wait()  # both calls run at once, each in its own copy
        REQUEST_ID.set(f"changed in the thread from {seen}")
        return seen, REQUEST_ID.get()

    async def caller(name: str) -> tuple[str, str]:
        REQUEST_ID.set(name)  # each task has its own context
        return await threads.run(read_set_read)

    try:
        first, second = await asyncio.gather(caller("a"), caller("b"))
        assert first == ("a", "changed in the thread from a")
        assert second == ("b", "changed in the thread from b")
        assert REQUEST_ID.get() == "unset"  # nothing the threads set came back
        assert await threads.run(REQUEST_ID.get) == "unset"  # nor stayed in a worker
    finally:
        threads.shutdown()


async def test_no_thread_starts_before_the_first_call_and_an_idle_worker_is_reused() -> None:
    threads = WorkerThreads(4, name="lazy-test")
    try:
        assert threads.size == 0
        assert workers_named("lazy-test") == []
        idents = {await threads.run(threading.get_ident) for _ in range(5)}
        assert len(idents) == 1  # one call at a time: one worker
        assert threads.size == 1
    finally:
        threads.shutdown()


async def test_blocking_calls_up_to_the_bound_all_run_at_once() -> None:
    threads = WorkerThreads(6)
    barrier = threading.Barrier(6, timeout=20)  # passes only with all 6 calls running at once
    try:
        results = await asyncio.gather(*(threads.run(barrier.wait) for _ in range(6)))
        assert sorted(results) == list(range(6))
        assert threads.size == 6
    finally:
        threads.shutdown()


async def test_the_pool_never_runs_more_calls_or_threads_than_its_bound() -> None:
    threads = WorkerThreads(3, name="bound-test")
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()
    three_running = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wait() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3:
                loop.call_soon_threadsafe(three_running.set)
        assert release.wait(20)
        with lock:
            running -= 1

    try:
        calls = [asyncio.ensure_future(threads.run(wait)) for _ in range(9)]
        await asyncio.wait_for(three_running.wait(), 20)
        assert (threads.size, len(workers_named("bound-test"))) == (3, 3)
        assert not any(call.done() for call in calls)  # six of them wait for a worker
        release.set()
        await asyncio.gather(*calls)
        assert peak == 3
        assert (threads.size, len(workers_named("bound-test"))) == (3, 3)
    finally:
        threads.shutdown()
        await threads.wait_closed(20)


def test_the_default_bound_is_the_standard_librarys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_workers.os, "cpu_count", lambda: 2)
    assert default_max_threads() == 6
    monkeypatch.setattr(_workers.os, "cpu_count", lambda: 64)
    assert default_max_threads() == 32
    monkeypatch.setattr(_workers.os, "cpu_count", lambda: None)
    assert default_max_threads() == 5


async def test_an_exception_reaches_the_caller_and_the_worker_survives_it() -> None:
    threads = WorkerThreads(1)

    def fail() -> None:
        raise ValueError("from the worker")

    try:
        with pytest.raises(ValueError, match="from the worker"):
            await threads.run(fail)
        assert await threads.run(lambda: 7) == 7
    finally:
        threads.shutdown()


async def test_a_call_cancelled_while_queued_never_runs() -> None:
    threads = WorkerThreads(1)
    release = threading.Event()
    ran: list[str] = []
    try:
        first = asyncio.ensure_future(threads.run(lambda: release.wait(20)))
        second = asyncio.ensure_future(threads.run(lambda: ran.append("second")))
        await asyncio.sleep(0)
        second.cancel()
        release.set()
        assert await first is True
        assert await threads.run(lambda: "third") == "third"
        assert second.cancelled()
        assert ran == []
    finally:
        threads.shutdown()


async def test_shutdown_cancels_queued_calls_refuses_new_ones_and_wait_closed_joins_the_workers() -> None:
    before = threading.active_count()
    threads = WorkerThreads(3, name="shutdown-test")
    release = threading.Event()
    barrier = threading.Barrier(3, timeout=20)
    await asyncio.gather(*(threads.run(barrier.wait) for _ in range(3)))  # three workers, idle now
    started = threading.Event()

    def block() -> bool:
        started.set()
        return release.wait(20)

    running = asyncio.ensure_future(threads.run(block))
    await asyncio.sleep(0)
    assert started.wait(20)  # in a worker now (blocks the loop: the workers need none)
    threads.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        await threads.run(lambda: None)
    assert await threads.wait_closed(0.05) is False  # one worker is still in its call
    assert len(workers_named("shutdown-test")) == 1
    release.set()
    assert await running is True  # a running call finishes in its thread
    assert await threads.wait_closed(20) is True
    assert workers_named("shutdown-test") == []
    assert threading.active_count() == before


async def test_shutdown_cancels_the_calls_still_queued() -> None:
    threads = WorkerThreads(1)
    release = threading.Event()
    running = asyncio.ensure_future(threads.run(lambda: release.wait(20)))
    queued = asyncio.ensure_future(threads.run(lambda: "never"))
    await asyncio.sleep(0)
    threads.shutdown()
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    assert await running is True
    assert await threads.wait_closed(20)


def test_max_threads_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        WorkerThreads(0)
