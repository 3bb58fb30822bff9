"""The process pool's task owner: a supervision task that fails is logged once and takes the
plugin offline (so calls fail fast and recovery begins) instead of leaving calls waiting for a
restart that will never come; closing the pool ends every task. Real plugin processes."""

from __future__ import annotations

import logging
import os
import signal

import pytest

import plugwire
from plugwire._transports._pool import PoolState, RestartPolicy
from plugwire._transports.subprocess import SubprocessOptions, SubprocessTransport
from plugwire.testing import FakeClock
from tests.support.echo_types import Req, Resp
from tests.support.procguard import python_plugin

pytestmark = [pytest.mark.usefixtures("no_leaks"), pytest.mark.timeout(20)]


class ClockWithABug(FakeClock):
    """A fake clock whose first sleep raises: a bug inside the supervisor's restart loop."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def sleep(self, seconds: float) -> None:
        if self.broken:
            self.broken = False
            raise RuntimeError("bug in the restart loop")
        await super().sleep(seconds)


async def test_a_failed_supervision_task_is_logged_once_and_takes_the_plugin_offline_then_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ClockWithABug()
    options = SubprocessOptions(grace=0.5, kill_after=0.5, restart=RestartPolicy(window=60), clock=clock)
    config = plugwire.PluginConfig(
        name="echo",
        retry=plugwire.RetryConfig(max_retries=0),
        connection=plugwire.ConnectionConfig(max_connections=1),
    )
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py", options=options), config=config)
        transport = manager._entries["echo"].transport
        assert isinstance(transport, SubprocessTransport)
        pool = transport.pool
        assert pool is not None
        pid = pool.workers[0].process.pid
        with caplog.at_level(logging.ERROR, logger="plugwire.tasks"):
            os.kill(pid, signal.SIGKILL)
            await pool.wait_for(lambda: pool.state is PoolState.OFFLINE)
        failures = [r.getMessage() for r in caplog.records if r.name == "plugwire.tasks"]
        assert failures == [f"plugwire-pool-echo: task 'after the exit of process {pid}' failed"]
        # Calls fail fast instead of waiting for a restart nobody will make.
        with pytest.raises(plugwire.PluginUnavailableError, match="supervision failed: RuntimeError"):
            await manager.execute("echo", Req(text="x"), plugwire.ExecutionContext(timeout=10))
        # The recovery schedule brings it back.
        await clock.wait_for_sleepers(1)
        clock.advance(60)
        await pool.wait_for(lambda: pool.state is PoolState.RUNNING)
        assert (await manager.execute("echo", Req(text="back"))).text == "back"
    assert len(pool._tasks) == 0
    assert pool._tasks.closed


async def test_closing_the_pool_ends_every_task_and_a_second_close_is_harmless() -> None:
    options = SubprocessOptions(grace=0.5, kill_after=0.5, restart=RestartPolicy(initial_backoff=30.0))
    config = plugwire.PluginConfig(
        name="echo",
        connection=plugwire.ConnectionConfig(max_connections=2, idle_timeout=5.0, max_idle_connections=1),
    )
    source = python_plugin("echo_plugin.py", options=options)
    transport = source.create_transport(source.configure("echo", config), Req)
    assert isinstance(transport, SubprocessTransport)
    await transport.start()
    pool = transport.pool
    assert pool is not None
    reaper = pool._tasks.tasks()
    assert [t.get_name() for t in reaper] == ["plugwire-pool-echo: reap idle processes"]
    os.kill(pool.workers[0].process.pid, signal.SIGKILL)  # its restart then waits 30 s
    await pool.wait_for(lambda: not pool.workers)
    tasks = pool._tasks.tasks()  # the reaper, and the crash's restart waiting in its backoff
    assert len(tasks) == 2
    await transport.aclose()
    assert all(t.cancelled() for t in tasks)
    assert len(pool._tasks) == 0
    await pool.aclose()
    await transport.aclose()
