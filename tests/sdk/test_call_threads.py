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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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


class Scripted(CallThreads):
    """`CallThreads` whose looks read scripted CPU shares, and run only when the test says."""

    def __init__(self, max_threads: int, shares: list[tuple[float, float]]) -> None:
        super().__init__(max_threads, name="scripted")
        self.shares = shares

    def _shares_since_mark(self) -> tuple[float, float]:
        return self.shares.pop(0)

    def _arm(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        pass  # the test calls _look_at_workers itself


class Blocked:
    """A pool of at most 4 whose calls all wait for `release`: one worker in a call, the rest queued."""

    def __init__(self, shares: list[tuple[float, float]]) -> None:
        self.threads = Scripted(4, shares)
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.futures: list[asyncio.Future[bool]] = []

    def call(self) -> bool:
        self.started.release()
        return self.release.wait(20)

    async def queue(self, calls: int) -> None:
        self.futures = [asyncio.ensure_future(self.threads.run(self.call)) for _ in range(calls)]
        await asyncio.sleep(0)  # each call is queued in its task's first step
        self.wait_for_calls(1)
        assert self.threads.size == 1

    def wait_for_calls(self, count: int) -> None:
        """Until `count` more calls are running (blocks: the workers need no event loop)."""
        for _ in range(count):
            assert self.started.acquire(timeout=20)


def live_workers() -> int:
    return sum(t.name.startswith("scripted") and t.is_alive() for t in threading.enumerate())


@asynccontextmanager
async def blocked_pool(shares: list[tuple[float, float]], calls: int = 8) -> AsyncIterator[Blocked]:
    """A `Blocked` pool with `calls` queued; on leaving, every call ends and every worker with it,
    and every scripted look must have been taken."""
    pool = Blocked(shares)
    try:
        await pool.queue(calls)
        yield pool
    finally:
        pool.release.set()
        await asyncio.gather(*pool.futures)
        pool.threads.shutdown()
        for worker in [t for t in threading.enumerate() if t.name.startswith("scripted")]:
            worker.join(timeout=20)
    assert live_workers() == 0
    assert pool.threads.shares == []


async def test_a_probe_whose_worker_only_takes_turns_is_undone_and_the_next_waits() -> None:
    async with blocked_pool([(0.95, 1.0), (1.0, 1.0), (0.95, 1.0)]) as pool:
        pool.threads._look_at_workers()  # one worker on a CPU all the time: probe
        assert (pool.threads.size, pool.threads.kept) == (2, 1)
        pool.threads._look_at_workers()  # the two used no more CPU than one did: undo
        assert (pool.threads.size, pool.threads.kept) == (1, 1)
        pool.threads._look_at_workers()  # the same again, at once: no new probe yet
        assert pool.threads.size == 1


async def test_a_probe_gaining_only_what_the_gil_allows_one_cpu_is_undone() -> None:
    # The first worker got half a CPU (the event loop kept it waiting for the GIL); with the
    # probe the two reach 0.9 together: a gain, but no more than GIL-bound threads can use.
    async with blocked_pool([(0.55, 0.95), (0.9, 1.0)]) as pool:
        pool.threads._look_at_workers()  # the worker as busy as the GIL lets it be: probe
        assert (pool.threads.size, pool.threads.kept) == (2, 1)
        pool.threads._look_at_workers()
        assert (pool.threads.size, pool.threads.kept) == (1, 1)


async def test_a_probe_whose_worker_runs_beside_the_others_is_kept_and_probing_goes_on() -> None:
    async with blocked_pool([(0.95, 1.0), (1.9, 1.9), (2.0, 2.0)]) as pool:
        pool.threads._look_at_workers()
        pool.threads._look_at_workers()  # two workers, two CPUs' worth: keep it, try a third
        assert (pool.threads.size, pool.threads.kept) == (3, 2)
        pool.threads._look_at_workers()  # the third added nothing: it goes
        assert (pool.threads.size, pool.threads.kept) == (2, 2)


async def test_a_probe_left_without_calls_to_judge_it_by_is_undone() -> None:
    async with blocked_pool([(0.95, 1.0)], calls=2) as pool:
        pool.threads._look_at_workers()  # probe: its worker takes the one queued call
        pool.wait_for_calls(1)
        assert pool.threads.size == 2
        pool.threads._look_at_workers()  # nothing waits any more
        assert (pool.threads.size, pool.threads.kept) == (1, 1)


async def test_waiting_calls_grow_the_pool_taking_back_a_retirement_first() -> None:
    async with blocked_pool([(0.95, 1.0), (1.0, 1.0), (0.1, 0.2)]) as pool:
        pool.threads._look_at_workers()
        pool.wait_for_calls(1)
        pool.threads._look_at_workers()  # a retirement is pending: both workers are still in a call
        assert (pool.threads.size, live_workers()) == (1, 2)
        pool.threads._look_at_workers()  # mostly waiting: to the cap, the pending retirement undone
        assert (pool.threads.size, live_workers()) == (4, 4)


async def test_a_busy_gil_holds_growth_back_even_when_the_workers_wait() -> None:
    async with blocked_pool([(0.1, 0.95)]) as pool:
        pool.threads._look_at_workers()  # the workers wait, but for the GIL the process keeps busy
        assert pool.threads.size == 1
