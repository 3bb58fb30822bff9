"""Worker threads for a plugin's plain `def` methods: a thread more only while the GIL has room.

Python runs one thread's bytecode at a time. A plain `def execute` that computes holds the
GIL for its whole call, so a second worker thread does not run beside the first: the calls
take turns, each finishes later than it would alone, and every hand-over of the GIL between
workers and the event loop is a moment the CPU can sit idle (measured: a pool of two
CPU-bound plugin processes left 10-14% of both CPUs idle with eight workers each, 2-3% with
one; `docs/subprocess.md`). A call that waits - a blocking read, `time.sleep`, a lock - lets the GIL go, and there
more threads do help: more calls wait at once.

`CallThreads` starts with one worker. While calls queue behind busy workers it looks, a few
milliseconds later, at how much CPU the workers used meanwhile (their thread CPU clocks), and
the whole process:

- workers below `GROW_BELOW` of one CPU, process below `GIL_BUSY`: the calls mostly wait and
  the GIL had room, so it starts as many workers as would keep it `FILL` busy (never more
  than `max_threads`, nor than the calls waiting);
- every worker on a CPU the whole time: it starts one more on trial (a probe) and looks again
  after `PROBE_LOOK`. If the workers' CPU use grew by `PROBE_GAIN` with it, to more than one
  CPU's worth (`BEYOND_ONE_CPU`: threads that hold the GIL cannot get there together), their
  calls run without the GIL (hashing, compression, numpy) and it keeps the worker and probes
  again; if not, the calls only took turns on the GIL, the worker goes, and the next probe
  waits (`FIRST_PROBE_PAUSE`, doubling up to `LONGEST_PROBE_PAUSE`);
- otherwise it looks less often (the delay doubles up to `LONGEST_LOOK`).

So calls that compute in Python run one after another on one worker, calls that block get a
thread each up to `max_threads`, and calls that compute without the GIL get about a worker
per free CPU. Only a pool that grew for calls that waited keeps more workers than it needs if
they later compute; workers are otherwise kept until `shutdown()`.

Where threads have no CPU clock of their own (`time.pthread_getcpuclockid`) or the GIL is
off, nothing can be told apart, and a worker is started whenever a call finds none idle, as
`concurrent.futures.ThreadPoolExecutor` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["CallThreads"]

T = TypeVar("T")

FIRST_LOOK = 0.002
"""Seconds after calls start queuing before the first look at the workers' CPU use."""
LONGEST_LOOK = 0.064
"""The longest delay between looks while the pool does not grow."""
GROW_BELOW = 0.6
"""Start more workers when the busy ones used less than this much of one CPU..."""
GIL_BUSY = 0.85
"""...and the whole process less than this much: a loop thread (or another) that keeps the
GIL busy leaves the workers off the CPU too, waiting for it, not for their I/O."""
FILL = 0.9
"""When growing, aim the workers' CPU use at this much of one CPU."""
PARALLEL_SLACK = 0.5
"""Workers using at least their number less this many CPUs are all busy the whole time: a
probe then tries one more."""
PROBE_GAIN = 0.3
"""A probe's worker stays if the workers' CPU use grew by at least this much with it (it ran
beside the others: their calls compute without holding the GIL)..."""
BEYOND_ONE_CPU = 1.15
"""...and reached at least this many CPUs' worth: threads that all hold the GIL cannot
together use more than one CPU, so a gain below it may only be a worker that the event loop
had kept waiting for the GIL before the probe."""
PROBE_LOOK = 0.012
"""Seconds a probe's extra worker runs before the look that keeps or retires it (longer than
the interpreter's 5 ms switch interval, so threads taking turns on the GIL show as such)."""
FIRST_PROBE_PAUSE = 0.25
"""Seconds before probing again after a probe's worker was retired; doubles each time."""
LONGEST_PROBE_PAUSE = 16.0

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


def _clocks_tell_apart() -> bool:
    """True where a worker's CPU time can be read from another thread and the GIL is on."""
    gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if gil_enabled is not None and not gil_enabled():
        return False
    return hasattr(time, "pthread_getcpuclockid")


class CallThreads:
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
        self._lock = threading.Lock()  # guards _clocks and _retire (workers retire themselves)
        self._clocks: dict[int, int] = {}  # thread ident -> its CPU clock
        self._retire = 0  # workers asked to exit after their current call
        self._measured = _clocks_tell_apart()
        self._look: asyncio.TimerHandle | None = None
        self._look_loop: asyncio.AbstractEventLoop | None = None
        self._look_after = FIRST_LOOK
        self._retired_cpu = 0.0  # CPU seconds of workers that have exited
        self._mark = (0.0, 0.0, 0.0)  # workers' CPU, process CPU, time
        self._probing = False
        self._share_before = 0.0
        self._probe_pause = FIRST_PROBE_PAUSE
        self._next_probe = 0.0
        self._closed = False

    @property
    def size(self) -> int:
        """Workers running now (not counting those asked to retire)."""
        with self._lock:
            return len(self._clocks) - self._retire

    @property
    def kept(self) -> int:
        """Workers the pool keeps: `size` less a probe's worker still on trial."""
        return self.size - self._probing

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn()` in a worker thread and return what it returns (or raise what it raised).

        Cancelled while it waits for a worker, `fn` never runs; once running, it runs to its
        end in its thread (a thread cannot be stopped) and its result is dropped.

        Raises:
            RuntimeError: after `shutdown()`.
        """
        if self._closed:
            raise RuntimeError("the plugin's worker threads are shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn))
        if not self._idle.acquire(blocking=False):
            self._short_of_workers(loop)
        return await future

    def shutdown(self) -> None:
        """Take no more calls: queued ones are cancelled, running ones finish in their threads,
        then every worker exits. Does not wait."""
        if self._closed:
            return
        self._closed = True
        if self._look is not None:
            self._look.cancel()
            self._look = None
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[1].cancel()
        for _ in range(self._started):
            self._jobs.put(None)  # more than are left is harmless

    def _short_of_workers(self, loop: asyncio.AbstractEventLoop) -> None:
        """A call found no idle worker: start one, or look at the busy ones a little later."""
        count = self.size
        if count >= self._max:
            return
        if count == 0 or not self._measured:
            self._start(1)
            return
        if self._look is not None and self._look_loop is not None and not self._look_loop.is_closed():
            return  # a look is due already
        self._arm(loop, self._look_after)

    def _arm(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self._mark = self._cpu_and_time()
        self._look_loop = loop
        self._look = loop.call_later(delay, self._look_at_workers)

    def _look_at_workers(self) -> None:
        """While calls wait: more workers if the busy ones leave the GIL mostly free, or if a
        probe's extra worker ran beside them (calls that compute without the GIL); the probe's
        worker goes again if it only took turns with the others."""
        self._look = None
        waiting = self._jobs.qsize()
        count = self.size
        probing, self._probing = self._probing, False
        if self._closed:
            return
        if not waiting:
            if probing:  # nothing left to judge the probe by: do not keep its worker
                self._stop_one()
            return
        share, busy = self._shares_since_mark()
        now = time.monotonic()
        delay = self._look_after
        if share < GROW_BELOW and busy < GIL_BUSY:  # the calls mostly wait, and the GIL had room
            if count < self._max:
                wanted = math.ceil(count * FILL / max(share, 0.01))
                self._start(min(self._max - count, waiting, max(1, wanted - count)))
            self._look_after = delay = FIRST_LOOK
        elif probing and (share - self._share_before < PROBE_GAIN or share < BEYOND_ONE_CPU):  # it only took turns
            self._stop_one()
            self._next_probe = now + self._probe_pause
            self._probe_pause = min(self._probe_pause * 2, LONGEST_PROBE_PAUSE)
        elif count < self._max and share >= count - PARALLEL_SLACK and (probing or now >= self._next_probe):
            self._start(1)  # every worker is on a CPU all the time: does one more run beside them?
            self._probing = True
            self._share_before = share
            delay = PROBE_LOOK
        elif not probing:
            self._look_after = delay = min(delay * 2, LONGEST_LOOK)
        if (self.size < self._max or self._probing) and self._look_loop is not None:
            self._arm(self._look_loop, delay)

    def _shares_since_mark(self) -> tuple[float, float]:
        """CPUs' worth the workers, and the whole process, used since the mark (1.0: one CPU
        the whole time)."""
        workers, process, now = self._cpu_and_time()
        elapsed = max(now - self._mark[2], 1e-9)
        return (workers - self._mark[0]) / elapsed, (process - self._mark[1]) / elapsed

    def _cpu_and_time(self) -> tuple[float, float, float]:
        """The workers' CPU seconds so far (those that exited included), the process's, and the time."""
        with self._lock:  # a retiring worker leaves the map before its clock goes
            workers = self._retired_cpu + sum(map(time.clock_gettime, self._clocks.values()))
        return workers, time.process_time(), time.perf_counter()

    def _start(self, count: int) -> None:
        for _ in range(count):
            with self._lock:
                if self._retire:  # a worker asked to retire stays instead
                    self._retire -= 1
                    continue
            thread = threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True)
            self._started += 1
            thread.start()  # returns once the thread runs: its ident is set
            assert thread.ident is not None
            with self._lock:
                self._clocks[thread.ident] = time.pthread_getcpuclockid(thread.ident) if self._measured else 0

    def _stop_one(self) -> None:
        with self._lock:
            self._retire += 1

    def _retiring(self) -> bool:
        """True if this worker is to exit now (it leaves the clock map first)."""
        with self._lock:
            if not self._retire:
                return False
            self._retire -= 1
            self._leave()
            return True

    def _leave(self) -> None:
        """Take this worker out of the clock map, keeping its CPU time (under the lock)."""
        if self._clocks.pop(threading.get_ident(), None) is not None and self._measured:
            self._retired_cpu += time.thread_time()

    def _work(self) -> None:
        jobs, idle = self._jobs, self._idle
        while (job := jobs.get()) is not None:
            loop, future, fn = job
            del job
            if not future.cancelled():  # cancelled while it waited: it never runs
                try:
                    result = fn()
                except BaseException as exc:
                    _deliver(loop, _fail, future, exc)
                else:
                    _deliver(loop, _resolve, future, result)
            del loop, future, fn
            if self._retire and self._retiring():
                return
            idle.release()
        with self._lock:
            self._leave()


def _deliver(loop: asyncio.AbstractEventLoop, how: Callable[[Any, Any], None], future: Any, value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this call any more
        loop.call_soon_threadsafe(how, future, value)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(exc)
