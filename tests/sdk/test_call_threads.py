"""`CallThreads`: plain `def` calls in worker threads, a thread more only while the GIL has room.

Real threads doing real work: calls that wait (a barrier only all of them together can pass)
must get a thread each; calls that compute in Python must not (they would only take turns on
the GIL); calls that compute without the GIL (hashlib on large buffers) keep a second worker
where a second CPU is free.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading

import pytest

from plugwire._sdk import _threads
from plugwire._sdk._threads import CallThreads

MEASURED = _threads._clocks_tell_apart()
needs_clocks = pytest.mark.skipif(not MEASURED, reason="no per-thread CPU clocks here (or the GIL is off)")


def compute(steps: int) -> int:
    total = 0
    for step in range(steps):
        total += step * step
    return total


async def test_calls_that_wait_for_each_other_each_get_a_thread() -> None:
    threads = CallThreads(8)
    barrier = threading.Barrier(8, timeout=20)  # passes only with all 8 calls running at once
    try:
        results = await asyncio.gather(*(threads.run(barrier.wait) for _ in range(8)))
        assert sorted(results) == list(range(8))
        assert threads.size == 8
    finally:
        threads.shutdown()


async def test_never_more_threads_than_max_threads() -> None:
    threads = CallThreads(3)
    running = 0
    peak = 0
    lock = threading.Lock()
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
        release.wait(20)
        with lock:
            running -= 1

    try:
        calls = [asyncio.ensure_future(threads.run(wait)) for _ in range(6)]
        await asyncio.wait_for(three_running.wait(), 20)  # grown while the running calls wait
        release.set()
        await asyncio.gather(*calls)
        assert peak == 3
        assert threads.size == 3
    finally:
        threads.shutdown()


@needs_clocks
async def test_calls_computing_in_python_stay_on_one_thread() -> None:
    threads = CallThreads(8)
    try:
        # About 1.5 s of pure-Python work in 48 calls, all queued at once.
        results = await asyncio.gather(*(threads.run(lambda: compute(200_000)) for _ in range(48)))
        assert len(set(results)) == 1
        # A probe may add a worker on trial; computing calls send it back.
        assert threads.kept == 1, f"{threads.kept} threads kept for calls that hold the GIL"
    finally:
        threads.shutdown()


@needs_clocks
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to run two hashes at once")
async def test_calls_computing_without_the_gil_keep_a_second_worker() -> None:
    threads = CallThreads(8)
    data = os.urandom(8 * 1024 * 1024)  # hashlib lets the GIL go for buffers this large

    def digest() -> bytes:
        return hashlib.sha256(data).digest()

    try:
        for _ in range(50):  # until a probe's worker was kept, or plainly not
            await asyncio.gather(*(threads.run(digest) for _ in range(16)))
            if threads.kept >= 2:
                break
        assert threads.kept >= 2
    finally:
        threads.shutdown()


async def test_an_exception_reaches_the_caller() -> None:
    threads = CallThreads(2)

    def fail() -> None:
        raise ValueError("from the worker")

    try:
        with pytest.raises(ValueError, match="from the worker"):
            await threads.run(fail)
        assert await threads.run(lambda: 7) == 7  # the worker survived it
    finally:
        threads.shutdown()


async def test_a_call_cancelled_while_queued_never_runs() -> None:
    threads = CallThreads(1)
    release = threading.Event()
    ran: list[str] = []
    try:
        first = asyncio.ensure_future(threads.run(lambda: release.wait(20)))
        second = asyncio.ensure_future(threads.run(lambda: ran.append("second")))
        await asyncio.sleep(0)
        second.cancel()
        release.set()
        assert await first is True
        assert await threads.run(lambda: "third") == "third"  # after the cancelled one, in order
        assert second.cancelled()
        assert ran == []
    finally:
        threads.shutdown()


async def test_shutdown_cancels_queued_calls_refuses_new_ones_and_ends_the_workers() -> None:
    threads = CallThreads(1, name="shutdown-test")
    release = threading.Event()
    running = asyncio.ensure_future(threads.run(lambda: release.wait(20)))
    queued = asyncio.ensure_future(threads.run(lambda: "never"))
    await asyncio.sleep(0)
    threads.shutdown()
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(RuntimeError, match="shut down"):
        await threads.run(lambda: None)
    release.set()
    assert await running is True  # a running call finishes in its thread
    workers = [t for t in threading.enumerate() if t.name.startswith("shutdown-test")]
    for worker in workers:
        worker.join(timeout=20)
    assert not any(worker.is_alive() for worker in workers)


async def test_without_thread_clocks_a_thread_starts_whenever_none_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_threads, "_clocks_tell_apart", lambda: False)
    threads = CallThreads(4)
    barrier = threading.Barrier(4, timeout=20)
    try:
        await asyncio.gather(*(threads.run(barrier.wait) for _ in range(4)))
        assert threads.size == 4
    finally:
        threads.shutdown()


def test_max_threads_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        CallThreads(0)
