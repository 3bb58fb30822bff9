"""One crash is one failure: the calls lost to one process exit count once in the circuit
breaker, one incident that kills many processes counts once against the restart limit, a
restarted process that passed its health check ends an open breaker's wait at once, and an
offline plugin is tried again with a growing wait. Real plugin processes, real SIGKILLs."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import plugwire
from plugwire._transports._pool import PoolState, ProcessPool, RestartPolicy
from plugwire._transports.subprocess import SubprocessOptions, SubprocessTransport
from plugwire.testing import FakeClock
from tests.support.echo_types import Req, Resp
from tests.support.procguard import python_plugin

pytestmark = [
    pytest.mark.faults,
    pytest.mark.usefixtures("no_leaks"),
    pytest.mark.timeout(20),
    pytest.mark.fast_paths_only,
]  # process lifecycle: once, fast


SLOW = Req(op="sleep", seconds=60)
Manager = plugwire.AsyncPluginManager[Req, Resp]


def pool_of(manager: Manager, name: str) -> tuple[SubprocessTransport, ProcessPool]:
    transport = manager._entries[name].transport
    assert isinstance(transport, SubprocessTransport)
    assert transport.pool is not None
    return transport, transport.pool


class Events:
    """Collects a transport's lifecycle events; `wait(kind)` returns once one arrived."""

    def __init__(self, transport: SubprocessTransport) -> None:
        self.seen: list[tuple[str, Mapping[str, Any]]] = []
        self._arrived = asyncio.Event()
        transport.listeners.append(self)

    def __call__(self, event: str, fields: Mapping[str, Any]) -> None:
        self.seen.append((event, fields))
        self._arrived.set()

    def count(self, kind: str) -> int:
        return sum(1 for event, _ in self.seen if event == kind)

    async def wait(self, kind: str, count: int = 1) -> None:
        while self.count(kind) < count:
            self._arrived.clear()
            await self._arrived.wait()


async def grow(manager: Manager, name: str, size: int, calls: list[asyncio.Future[Resp]]) -> ProcessPool:
    """Keep every process busy with slow calls until the pool has `size` processes."""
    _, pool = pool_of(manager, name)
    while len(pool.workers) < size:
        have = len(pool.workers)
        # Least-loaded dispatch: one call per idle process, and the next finds them all busy.
        busy = sum(1 for w in pool.workers if w.conn.inflight)
        for _ in range(have - busy + 1):
            calls.append(asyncio.ensure_future(manager.execute(name, SLOW)))
        await asyncio.sleep(0)  # the calls are sent, and the growth asked for
        await pool.wait_for(lambda have=have: len(pool.workers) > have)
    return pool


def kill(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


async def failed_with_codes(calls: list[asyncio.Future[Resp]]) -> list[BaseException]:
    """Every call ended, and each failure is a coded `PluginError`."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(f, plugwire.PluginError) for f in failures), failures
    return failures


# ------------------------------------------------------------------ item 3: the breaker
PRESETS: dict[str, Callable[..., Any]] = {
    "simple": plugwire.simple,
    "development": plugwire.development,
    "production": plugwire.production,
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
async def test_sigkill_with_16_calls_in_flight_under_each_preset_leaves_the_plugin_serving_after_the_restart(
    preset: str,
) -> None:
    """16 calls lost to one exit are one breaker failure: after the supervisor's restart the
    plugin serves at once, not after the preset's 30 s `recovery_timeout` (the test's own
    timeout is 20 s)."""
    builder = PRESETS[preset](Req, Resp).with_plugin("echo", python_plugin("echo_plugin.py"))
    async with builder.build() as manager:
        transport, pool = pool_of(manager, "echo")
        events = Events(transport)
        victim = pool.workers[0]
        calls = [asyncio.ensure_future(manager.execute("echo", SLOW)) for _ in range(16)]
        await asyncio.sleep(0)
        assert victim.conn.inflight == 16
        await pool.wait_for(lambda: len(pool.workers) == 2)  # the pool grew beside the busy one
        kill([w.process.pid for w in pool.workers])  # the whole pool, so the supervisor restarts it
        failures = await failed_with_codes(calls)
        assert len(failures) == 16
        assert all(isinstance(f, plugwire.OutcomeUnknownError) for f in failures)
        await events.wait("restarted")  # the supervisor's new process passed its handshake
        answer = await manager.execute("echo", Req(text="back"))
        assert answer.text == "back"
        breaker = manager.circuit_breaker("echo")
        assert breaker is not None
        assert breaker.state is plugwire.policies.BreakerState.CLOSED
        assert breaker.trips == 0
        assert pool.incidents == 1


async def test_in_a_pool_of_two_the_healthy_process_keeps_serving_while_the_other_is_replaced() -> None:
    config = plugwire.PluginConfig(name="echo", connection=plugwire.ConnectionConfig(max_connections=2))
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config)
        _, pool = pool_of(manager, "echo")
        victim = pool.workers[0]
        calls = [asyncio.ensure_future(manager.execute("echo", SLOW)) for _ in range(16)]
        await asyncio.sleep(0)
        assert victim.conn.inflight == 16
        await pool.wait_for(lambda: len(pool.workers) == 2)
        healthy = pool.workers[1].process.pid
        kill([victim.process.pid])
        assert len(await failed_with_codes(calls)) == 16
        for _ in range(8):  # at once, without waiting for any restart
            assert (await manager.execute("echo", Req(text="still here"))).pid == healthy
        breaker = manager.circuit_breaker("echo")
        assert breaker is not None
        assert breaker.state is plugwire.policies.BreakerState.CLOSED
        assert breaker.trips == 0


async def test_an_open_breaker_turns_half_open_as_soon_as_the_restarted_process_passed_its_health_check() -> None:
    config = plugwire.PluginConfig(
        name="echo",
        # One failure opens it; its recovery timeout is far beyond the test's.
        circuit_breaker=plugwire.CircuitBreakerConfig(
            failure_threshold=1, min_request_threshold=0, recovery_timeout=300
        ),
        connection=plugwire.ConnectionConfig(max_connections=1),
    )
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config)
        transport, pool = pool_of(manager, "echo")
        events = Events(transport)
        breaker = manager.circuit_breaker("echo")
        assert breaker is not None
        calls = [asyncio.ensure_future(manager.execute("echo", SLOW)) for _ in range(4)]
        await asyncio.sleep(0)
        kill([pool.workers[0].process.pid])
        await failed_with_codes(calls)
        assert breaker.state is plugwire.policies.BreakerState.OPEN
        with pytest.raises(plugwire.CircuitOpenError):
            await manager.execute("echo", Req(text="too early"))
        await events.wait("ready")
        assert breaker.state is plugwire.policies.BreakerState.HALF_OPEN
        for text in ("trial 1", "trial 2"):  # success_threshold trials close it
            assert (await manager.execute("echo", Req(text=text))).text == text
        assert breaker.state is plugwire.policies.BreakerState.CLOSED
        assert breaker.transitions[(plugwire.policies.BreakerState.OPEN, plugwire.policies.BreakerState.HALF_OPEN)] == 1


# ------------------------------------------------------------ a stuck process in a pool
async def test_calls_leave_a_process_that_stopped_answering_for_the_others_in_its_pool() -> None:
    # Before: ties at 0 in flight went to the first process, stuck or not, so every call timed
    # out there until the connection was declared stuck (stall_timeout, 10 s by default).
    config = plugwire.PluginConfig(
        name="echo",
        connection=plugwire.ConnectionConfig(max_connections=2, request_timeout=0.5),
        retry=plugwire.RetryConfig(max_retries=0),
    )
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config)
        _, pool = pool_of(manager, "echo")
        # Two calls at once: the second finds the only process busy, and the pool grows.
        # They are answered (a call given up would count as unanswered, as a stuck one's do).
        calls = [asyncio.ensure_future(manager.execute("echo", Req(op="sleep", seconds=0.2))) for _ in range(2)]
        await pool.wait_for(lambda: len(pool.workers) == 2)
        await asyncio.gather(*calls)
        stuck, other = pool.workers
        assert not stuck.conn.stalls.suspect()
        assert not other.conn.stalls.suspect()
        with pytest.raises(plugwire.PluginTimeoutError):  # least loaded, first: the stuck one
            await manager.execute("echo", Req(op="block", seconds=2))
        assert stuck.conn.stalls.suspect()
        answers = [await manager.execute("echo", Req(text=str(n))) for n in range(5)]
        assert [a.pid for a in answers] == [other.process.pid] * 5
        assert stuck.conn.stalls.suspect()  # it answered nothing meanwhile


# ------------------------------------------------------------ item 17: incidents, offline
async def test_one_incident_that_kills_six_processes_of_a_grown_pool_counts_once() -> None:
    config = plugwire.PluginConfig(name="echo", connection=plugwire.ConnectionConfig(max_connections=7))
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config)
        transport, _ = pool_of(manager, "echo")
        events = Events(transport)
        calls: list[asyncio.Future[Resp]] = []
        pool = await grow(manager, "echo", 7, calls)
        survivor = pool.workers[-1].process.pid
        kill([w.process.pid for w in pool.workers[:6]])
        await pool.wait_for(lambda: all(w.process.pid == survivor for w in pool.workers))
        # Each exit is counted once reaped, after the pool let the process go: wait for all six.
        await events.wait("crashed", 6)
        assert (await manager.execute("echo", Req(text="served"))).text == "served"
        assert pool.state is PoolState.RUNNING
        assert pool.incidents == 1  # not 6: under the old count, past max_restarts (5) and offline
        breaker = manager.circuit_breaker("echo")
        assert breaker is not None
        assert breaker.trips == 0  # the calls of all six processes were one failure
        # Every slow call was sent to one of the six (the seventh joined last, idle): each
        # ended with a coded error, none hangs.
        assert len(await failed_with_codes(calls)) == len(calls)


async def test_whole_pool_kills_round_after_round_bring_the_plugin_back_with_every_failure_coded() -> None:
    """Fault test: kill -9 every process of a grown pool at once, several rounds."""
    config = plugwire.PluginConfig(name="echo", connection=plugwire.ConnectionConfig(max_connections=6))
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config)
        transport, _ = pool_of(manager, "echo")
        events = Events(transport)
        for round_ in range(1, 5):
            calls: list[asyncio.Future[Resp]] = []
            pool = await grow(manager, "echo", 6, calls)
            kill([w.process.pid for w in pool.workers])
            failures = await failed_with_codes(calls)  # none hangs: gather returns
            assert failures, "the calls in flight were lost with their processes"
            await events.wait("ready", round_)
            assert (await manager.execute("echo", Req(text=f"round {round_}"))).text == f"round {round_}"
            assert pool.state is PoolState.RUNNING
        breaker = manager.circuit_breaker("echo")
        assert breaker is not None
        assert breaker.trips == 0
        # Four incidents (not 24 crashes) in the window: within the default limit of 5.
        assert transport.pool is not None
        assert transport.pool.incidents == 4


async def test_an_offline_plugin_is_tried_again_after_the_window_with_a_growing_wait_shown_in_health(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    policy = RestartPolicy(initial_backoff=0.1, max_restarts=2, window=60, multiplier=2.0)
    options = SubprocessOptions(grace=0.5, kill_after=0.5, restart=policy, clock=clock)
    state = tmp_path / "starts"
    plugin = python_plugin("raw_plugin.py", "crash-after-first", options=options, RAW_PLUGIN_STATE=str(state))
    config = plugwire.PluginConfig(
        name="raw",
        retry=plugwire.RetryConfig(max_retries=0),
        connection=plugwire.ConnectionConfig(max_connections=1),
    )
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(plugin, config=config)
        transport, pool = pool_of(manager, "raw")
        events = Events(transport)
        kill([pool.workers[0].process.pid])
        while True:  # the restart loop's backoff sleeps pass on the fake clock until offline
            await clock.wait_for_sleepers(1)
            if pool.state is PoolState.OFFLINE:
                break
            clock.advance_to(clock.next_deadline or 0.0)
        health = (await manager.health())["raw"]
        assert health.status is plugwire.Status.OFFLINE
        assert health.metadata["next_restart_in"] == "60.000"  # the restart window
        with pytest.raises(plugwire.PluginUnavailableError) as caught:
            await manager.execute("raw", Req(text="x"))
        assert caught.value.code == plugwire.errors.ErrorCode.PLUGIN_OFFLINE

        clock.advance(60)  # the first try: the plugin still crashes on start
        await clock.wait_for_sleepers(1)
        assert pool.offline_tries == 1
        assert pool.retry_in() == pytest.approx(120)  # the wait grew
        health = (await manager.health())["raw"]
        assert health.metadata["next_restart_in"] == "120.000"
        assert "crashing on start" in health.message or "exited before the handshake" in health.message

        state.unlink()  # the cause is gone: the next start works
        clock.advance(120)
        await events.wait("ready")
        assert pool.state is PoolState.RUNNING
        assert (await manager.execute("raw", Req(text="back"))).text == "back"
        assert manager.list_plugins()["raw"].status is plugwire.Status.HEALTHY
