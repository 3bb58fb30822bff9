"""Subprocess plugins (issue 3): `manager.execute` on a plugin process against the floors and peers.

Every candidate goes through the full path: the manager with the README's default policies
(circuit breaker, retry, timeout; rate limit off as shipped), the typed codec, the wire
protocol over the socket pair, and `plugwire.serve` in the plugin. Only the number of plugin
processes is set (one, unless the case is about pools).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import plugwire

from .._model import Env, Kind, Op, Side, Versus, at_least, at_most, case
from ..baselines._proc import CHILDREN, stop
from ..baselines.peers import PYRO5, RPYC, RPYC_X64
from ..baselines.pipes import (
    ASYNCIO_FLOOR,
    ASYNCIO_FLOOR_64K,
    ASYNCIO_FLOOR_X64,
    ASYNCIO_HOST_FLOOR,
    ASYNCIO_HOST_FLOOR_X64,
)
from ..baselines.processes import PYTHON_MEMORY, PYTHON_PASS, peak_rss
from ..baselines.waiting import answered_together
from ._plugin import (
    PLUGIN_SCRIPT,
    Echo,
    Manager,
    busy_request,
    echo_request,
    plugin_config,
    plugin_env,
    plugin_pids,
    running_manager,
)

IN_FLIGHT = 64
CALLS_EACH = 16
POOL_IN_FLIGHT = 16
POOL_CALLS_EACH = 8
POOL_GROW_S = 20.0


@case(
    "subprocess.small",
    label="manager.execute, subprocess plugin",
    baseline=ASYNCIO_FLOOR,
    target=at_most(1.5),
    also=[Versus(RPYC, at_most(0.5)), Versus(PYRO5, at_most(0.5)), Versus(ASYNCIO_HOST_FLOOR)],
    note="issue 3: a small typed request (about 100 bytes) through the full `manager.execute` path "
    "(default policies) to a `plugwire.serve` plugin process, one call at a time, against a bare "
    "asyncio echo (asyncio on both ends); at most half the latency of rpyc and of Pyro5. Info: "
    "against the asyncio host over a blocking echo child (no event loop in the child).",
)
@asynccontextmanager
async def subprocess_small(env: Env) -> AsyncIterator[Op]:
    async with running_manager(env, plugin_config("echo")) as manager:
        yield partial(manager.execute, "echo", echo_request())


@case(
    "subprocess.small.uvloop",
    label="manager.execute, subprocess plugin on uvloop",
    baseline=ASYNCIO_FLOOR,
    target=at_most(1.5),
    also=[Versus(RPYC), Versus(PYRO5)],
    requires=("uvloop",),
    note="`subprocess.small` with the plugin started with PLUGWIRE_LOOP=uvloop in its configured env "
    "(the `uvloop` extra): the same call, the plugin's stdio server on a uvloop event loop; the host "
    "stays on asyncio, and the floor is the same asyncio one. Info: against rpyc and Pyro5.",
)
@asynccontextmanager
async def subprocess_small_uvloop(env: Env) -> AsyncIterator[Op]:
    async with running_manager(env, plugin_config("echo"), extra_env={"PLUGWIRE_LOOP": "uvloop"}) as manager:
        yield partial(manager.execute, "echo", echo_request())


class _Neighbour:
    """One CPU-bound process shared by the sides of a case that are alive at once.

    Started with the first side's set-up and stopped with the last one's teardown, so the
    candidate and its baselines run beside the same neighbour. The runner pins it with the
    case's other children (a `same` case: on the one CPU they share).
    """

    proc: subprocess.Popen[bytes] | None = None
    users = 0

    @classmethod
    @contextmanager
    def beside(cls, env: Env) -> Iterator[None]:
        if cls.users == 0:
            cls.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], env=env.child_env)
        cls.users += 1
        try:
            yield
        finally:
            cls.users -= 1
            if cls.users == 0 and cls.proc is not None:
                cls.proc.kill()
                cls.proc.wait()
                cls.proc = None


@asynccontextmanager
async def _echo_floor_beside_neighbour(env: Env) -> AsyncIterator[Op]:
    with _Neighbour.beside(env):
        async with ASYNCIO_FLOOR.factory(env) as op:
            yield op


@case(
    "subprocess.small.contended",
    label="manager.execute, subprocess plugin, beside a busy process",
    baseline=Side("bare asyncio echo, beside a busy process", _echo_floor_beside_neighbour),
    target=None,
    also_unpinned=False,
    note="info: `subprocess.small` and its asyncio floor while a pure-Python busy loop at the same "
    "priority shares their CPU (one such process for both sides). When the answer is not there "
    "right after a request, the host yields the CPU once (`sched_yield`) before it sleeps in "
    "`epoll_wait`; this shows what that costs where a CPU-bound neighbour can take the CPU "
    "(compare the p99 tails).",
)
@asynccontextmanager
async def subprocess_small_contended(env: Env) -> AsyncIterator[Op]:
    with _Neighbour.beside(env):
        async with running_manager(env, plugin_config("echo")) as manager:
            yield partial(manager.execute, "echo", echo_request())


async def _callers(manager: Manager, name: str, request: Echo, callers: int, calls_each: int) -> None:
    """`callers` callers at once, each making `calls_each` calls to plugin `name` in a row:
    `callers` calls in flight throughout (but for the last calls of each)."""

    async def caller() -> None:
        for _ in range(calls_each):
            await manager.execute(name, request)

    await asyncio.gather(*(caller() for _ in range(callers)))


async def _gathered(manager: Manager, name: str, request: Echo, count: int) -> None:
    """`count` calls to plugin `name` in one `asyncio.gather`."""
    await asyncio.gather(*(manager.execute(name, request) for _ in range(count)))


@case(
    "subprocess.x64",
    label="manager.execute, 64 callers on one plugin process",
    baseline=ASYNCIO_FLOOR_X64,
    target=at_least(0.5),
    also=[Versus(RPYC_X64, at_least(3.0)), Versus(ASYNCIO_HOST_FLOOR_X64)],
    kind=Kind.THROUGHPUT,
    per_call=IN_FLIGHT * CALLS_EACH,
    note=f"issue 3: 64 calls in flight on one plugin process (`max_connections=1`): {IN_FLIGHT} callers, "
    f"each awaiting `manager.execute` {CALLS_EACH} times in a row (a server with 64 requests in progress); "
    "calls per second against the bare asyncio echo and rpyc with 64 frames in flight (info: the "
    "asyncio host over the blocking echo child). `subprocess.x64.gather` shows the same calls gathered "
    "64 at a time.",
)
@asynccontextmanager
async def subprocess_x64(env: Env) -> AsyncIterator[Op]:
    async with running_manager(env, plugin_config("echo")) as manager:
        yield partial(_callers, manager, "echo", echo_request(), IN_FLIGHT, CALLS_EACH)


@asynccontextmanager
async def _gather_floor(env: Env) -> AsyncIterator[Op]:
    """asyncio alone: 64 coroutines gathered, each awaiting a future that is resolved when all wait."""
    call = answered_together(IN_FLIGHT)

    async def gathered() -> None:
        await asyncio.gather(*(call() for _ in range(IN_FLIGHT)))

    yield gathered


@case(
    "subprocess.x64.gather",
    label="manager.execute, 64 gathered at once on one plugin process",
    baseline=ASYNCIO_FLOOR_X64,
    target=None,
    also=[
        Versus(RPYC_X64),
        Versus(Side("asyncio.gather of 64 coroutines awaiting a future, no I/O", _gather_floor, per_call=IN_FLIGHT)),
    ],
    kind=Kind.THROUGHPUT,
    per_call=IN_FLIGHT,
    note="info: 64 `manager.execute` calls in one `asyncio.gather`, again and again (in flight: 64 "
    "down to 0 each round). `gather` wraps each coroutine in a task: its last row is that cost "
    "alone, with no plugwire code and no I/O.",
)
@asynccontextmanager
async def subprocess_x64_gather(env: Env) -> AsyncIterator[Op]:
    async with running_manager(env, plugin_config("echo")) as manager:
        yield partial(_gathered, manager, "echo", echo_request(), IN_FLIGHT)


@case(
    "subprocess.64k",
    label="manager.execute, 64 KiB request and answer",
    baseline=ASYNCIO_FLOOR_64K,
    target=at_most(1.5),
    note="issue 3: a request of about 64 KiB encoded (a 64 KiB string field), echoed back, through "
    "the full execute path; against 64 KiB frames over bare asyncio pipes.",
)
@asynccontextmanager
async def subprocess_64k(env: Env) -> AsyncIterator[Op]:
    request = echo_request(64 * 1024)
    async with running_manager(env, plugin_config("echo"), request=request) as manager:
        yield partial(manager.execute, "echo", request)


@asynccontextmanager
async def _busy_pool(
    env: Env,
    processes: int,
    calls_each: int = POOL_CALLS_EACH,
    max_threads: int | None = None,
    steps: int | None = None,
) -> AsyncIterator[Op]:
    """`POOL_IN_FLIGHT` callers of the CPU-bound plugin, each making `calls_each` calls in a row
    (0: the calls gathered at once, one each), pool of at most `processes`; the plugin's plain
    `def` runs on at most `max_threads` threads (default: `serve()`'s), `steps` loop steps per
    call (default `BUSY_STEPS`)."""
    request = busy_request() if steps is None else Echo(text="busy", count=steps)
    extra_env = {} if max_threads is None else {"PLUGWIRE_BENCH_MAX_THREADS": str(max_threads)}
    async with running_manager(env, plugin_config("busy", processes), mode="busy", extra_env=extra_env) as manager:
        gathered = partial(_gathered, manager, "busy", request, POOL_IN_FLIGHT)
        # Calls that find every process busy make the pool start one more (in the background):
        # keep it busy until it has all its processes, so none starts while measured.
        deadline = asyncio.get_running_loop().time() + POOL_GROW_S
        while (count := len(await plugin_pids(manager, "busy"))) < processes:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the pool runs {count} processes after {POOL_GROW_S:g}s, expected {processes}")
            await gathered()
        yield partial(_callers, manager, "busy", request, POOL_IN_FLIGHT, calls_each) if calls_each else gathered


@case(
    "subprocess.pool2",
    label="pool of 2 processes, CPU-bound plugin",
    baseline=Side(
        "pool of 1 process, CPU-bound plugin",
        partial(_busy_pool, processes=1, max_threads=1),
        per_call=POOL_IN_FLIGHT * POOL_CALLS_EACH,
    ),
    target=at_least(1.6),
    kind=Kind.THROUGHPUT,
    per_call=POOL_IN_FLIGHT * POOL_CALLS_EACH,
    pin="none",
    also_unpinned=False,
    note=f"issue 3: {POOL_IN_FLIGHT} callers, each making {POOL_CALLS_EACH} calls in a row to a plugin whose "
    "plain `def execute` does about 1.5 ms of pure-Python work on one thread (`serve(max_threads=1)`, as "
    "docs/subprocess.md advises for such calls); `max_connections=2` against 1, unpinned. "
    "Scaling needs both CPUs free: other load on the machine (see the load average above) pulls the "
    "ratio toward 1.",
)
@asynccontextmanager
async def subprocess_pool2(env: Env) -> AsyncIterator[Op]:
    async with _busy_pool(env, processes=2, max_threads=1) as op:
        yield op


@case(
    "subprocess.pool2.gather",
    label="pool of 2 processes, CPU-bound plugin, calls gathered",
    baseline=Side(
        "pool of 1 process, CPU-bound plugin, calls gathered",
        partial(_busy_pool, processes=1, calls_each=0, max_threads=1),
        per_call=POOL_IN_FLIGHT,
    ),
    target=None,
    kind=Kind.THROUGHPUT,
    per_call=POOL_IN_FLIGHT,
    pin="none",
    also_unpinned=False,
    note=f"info: `subprocess.pool2` with its {POOL_IN_FLIGHT} calls gathered at once, again and again: "
    "each round waits for the slower process's last call while the other process idles.",
)
@asynccontextmanager
async def subprocess_pool2_gather(env: Env) -> AsyncIterator[Op]:
    async with _busy_pool(env, processes=2, calls_each=0, max_threads=1) as op:
        yield op


@case(
    "subprocess.startup",
    label="plugin start (spawn to handshake) + kill",
    baseline=PYTHON_PASS,
    target=None,
    pin="none",
    also_unpinned=False,
    note="info (issue 3): `transport.start()` of the echo plugin, spawn to the end of the handshake "
    "(the plugin imports plugwire and serves), then an immediate stop (grace 0: SIGTERM, then "
    "SIGKILL), against `python -c pass` from spawn to exit.",
)
@asynccontextmanager
async def subprocess_startup(env: Env) -> AsyncIterator[Op]:
    options = plugwire.config.SubprocessOptions(grace=0.0, kill_after=0.0)
    source = plugwire.subprocess(sys.executable, str(PLUGIN_SCRIPT), env=plugin_env(env), options=options)
    config = source.configure("echo", plugin_config("echo"))

    async def start_and_stop() -> None:
        transport = source.create_transport(config, Echo)
        try:
            await transport.start()
        finally:
            await transport.aclose()

    yield start_and_stop


@case(
    "subprocess.memory.plugin",
    label="plugin process (plugwire.serve, after 200 calls)",
    baseline=PYTHON_MEMORY,
    target=None,
    kind=Kind.MEMORY,
    pin="none",
    also_unpinned=False,
    rounds=5,
    note="info (issue 3): peak resident memory (VmHWM) of the echo plugin's process after 200 calls, "
    "against a bare interpreter.",
)
@asynccontextmanager
async def plugin_memory(env: Env) -> AsyncIterator[Op]:
    request = echo_request()
    async with running_manager(env, plugin_config("echo")) as manager:
        for _ in range(200):
            await manager.execute("echo", request)
        (pid,) = await plugin_pids(manager, "echo")
        yield partial(peak_rss, pid)


@asynccontextmanager
async def _host_memory(env: Env) -> AsyncIterator[Op]:
    """Peak memory of `children/plugwire_host.py` (a manager + one subprocess plugin) once ready."""
    argv = [sys.executable, str(CHILDREN / "plugwire_host.py")]

    def measure() -> int:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env.child_env)
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"the plugwire host child did not become ready (status {proc.wait()})")
            return peak_rss(proc.pid)
        finally:
            stop(proc)  # closing its stdin shuts its manager down, which stops its plugin

    yield measure


@case(
    "subprocess.memory.host",
    label="host process (manager + 1 subprocess plugin, after 200 calls)",
    baseline=PYTHON_MEMORY,
    target=None,
    kind=Kind.MEMORY,
    pin="none",
    also_unpinned=False,
    rounds=5,
    note="info (issue 3): peak resident memory (VmHWM) of a host process running `AsyncPluginManager` "
    "with one subprocess plugin after 200 calls (measured in a child, plugin process not counted), "
    "against a bare interpreter.",
)
@asynccontextmanager
async def host_memory(env: Env) -> AsyncIterator[Op]:
    async with _host_memory(env) as op:
        yield op


def _threads_case(name: str, label: str, processes: int, steps: int | None, what: str) -> None:
    """An info case: the busy plugin on `serve()`'s default thread bound against `max_threads=1`."""
    per_call = POOL_IN_FLIGHT * POOL_CALLS_EACH

    @case(
        name,
        label=f"{label}, default max_threads",
        baseline=Side(
            f"{label}, max_threads=1",
            partial(_busy_pool, processes=processes, max_threads=1, steps=steps),
            per_call=per_call,
        ),
        target=None,
        kind=Kind.THROUGHPUT,
        per_call=per_call,
        pin="none",
        also_unpinned=False,
        note=f"info: `serve()`'s default thread bound (min(32, CPUs + 4)) against `max_threads=1`: "
        f"{POOL_IN_FLIGHT} callers, {POOL_CALLS_EACH} calls each in a row, {what}, unpinned.",
    )
    @asynccontextmanager
    async def default_bound(env: Env) -> AsyncIterator[Op]:
        async with _busy_pool(env, processes, steps=steps) as op:
            yield op


_threads_case(
    "subprocess.threads.busy",
    "1 process, CPU-bound plain def",
    1,
    None,
    "a plain `def execute` doing about 1.5 ms of pure-Python work",
)
_threads_case(
    "subprocess.threads.busy.pool2",
    "pool of 2 processes, CPU-bound plain def",
    2,
    None,
    "a plain `def execute` doing about 1.5 ms of pure-Python work, `max_connections=2`",
)
_threads_case(
    "subprocess.threads.instant",
    "1 process, plain def returning at once",
    1,
    0,
    "a plain `def execute` that returns at once",
)
