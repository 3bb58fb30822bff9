"""Worker threads for a plugin's plain `def` methods: a bounded pool, like `asyncio.to_thread`'s.

`WorkerThreads(max_threads)` runs each call in a worker thread, starting a worker whenever a
call finds none idle, up to `max_threads` (by default `min(32, CPUs + 4)`, the bound of
`concurrent.futures.ThreadPoolExecutor`); further calls queue until a worker is free. Workers
start on demand and stay until `shutdown()`. Each call runs in a copy of its caller's
`contextvars` context, as with `asyncio.to_thread`: a context variable the caller set is seen
in the thread, and one the call sets stays in the thread's copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["WorkerThreads", "default_max_threads"]

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context, Callable[[], Any]]


def default_max_threads() -> int:
    """The stdlib's bound: `min(32, CPUs + 4)` (calls that wait need threads; CPUs cap the rest)."""
    return min(32, (os.cpu_count() or 1) + 4)


class WorkerThreads:
    """The worker threads of one plugin's plain `def` methods (see the module's docstring).

    Args:
        max_threads: The most workers at once (`serve(max_threads=...)`).
        name: Prefix of the workers' thread names.
    """

    def __init__(self, max_threads: int, *, name: str = "plugwire-plugin") -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be >= 1")
        self._max = max_threads
        self._name = name
        self._started = 0
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one count per worker that finished a job
        self._lock = threading.Lock()  # guards _workers and _exit_waiters
        self._workers: list[threading.Thread] = []  # started and not yet exited
        # Every worker started, until a later start finds it ended: one that has left
        # `_workers` may still be running its last lines, which `wait_closed` waits out.
        self._threads: list[threading.Thread] = []
        self._exit_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closed = False

    @property
    def size(self) -> int:
        """Workers running now."""
        with self._lock:
            return len(self._workers)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn()` in a worker thread, in a copy of the caller's context, and return what it
        returns (or raise what it raised).

        Cancelled while it waits for a worker, `fn` never runs; once running, it runs to its
        end in its thread (a thread cannot be stopped) and its result is dropped.

        Raises:
            RuntimeError: after `shutdown()`.
        """
        if self._closed:
            raise RuntimeError("the plugin's worker threads are shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, contextvars.copy_context(), fn))
        if not self._idle.acquire(blocking=False) and self.size < self._max:
            self._start()  # no worker is idle: one more
        return await future

    def shutdown(self) -> None:
        """Take no more calls: queued ones are cancelled, running ones finish in their threads,
        then every worker exits. Does not wait (`wait_closed` does)."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[1].cancel()
        for _ in range(self._started):
            self._jobs.put(None)  # more than are left is harmless

    async def wait_closed(self, timeout: float) -> bool:
        """After `shutdown()`: wait until every worker has exited, at most `timeout` seconds.

        Returns False if some worker is still in a call after `timeout` (it is left to run).
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            threads = list(self._threads)
            waiter: asyncio.Future[None] | None = None
            if self._workers:
                waiter = loop.create_future()
                self._exit_waiters.append((loop, waiter))
        if waiter is not None:
            await asyncio.wait({waiter}, timeout=timeout)
            if not waiter.done():
                waiter.cancel()
                return False
        for thread in threads:  # each has left the pool, so is past its last job: the joins are short
            thread.join()
        return True

    def _start(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True)
        self._started += 1
        with self._lock:
            self._workers.append(thread)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        jobs, idle = self._jobs, self._idle
        try:
            while (job := jobs.get()) is not None:
                loop, future, context, fn = job
                del job
                how: Callable[[Any, Any], None] | None = None
                value: Any = None
                if not future.cancelled():  # cancelled while it waited: it never runs
                    try:
                        value = context.run(fn)
                        how = _resolve
                    except BaseException as exc:
                        value, how = exc, _fail
                idle.release()  # before the answer: the caller's next call finds this worker idle
                if how is not None:
                    _deliver(loop, how, future, value)
                del loop, future, context, fn, value
        finally:
            self._exited()

    def _exited(self) -> None:
        """Take this worker out of the pool; the last one to go wakes `wait_closed`."""
        with self._lock:
            self._workers.remove(threading.current_thread())
            if self._workers or not self._closed:
                return
            waiters, self._exit_waiters = self._exit_waiters, []
        for loop, waiter in waiters:
            _deliver(loop, _resolve, waiter, None)


def _deliver(loop: asyncio.AbstractEventLoop, how: Callable[[Any, Any], None], future: Any, value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this call any more
        loop.call_soon_threadsafe(how, future, value)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(exc)
