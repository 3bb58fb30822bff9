"""The health monitor over the real subprocess transport: an unhealthy plugin is restarted by
the monitor, a killed one by the supervisor, and either serves again."""

from __future__ import annotations

import msgspec
import pytest

import plugwire
from plugwire import Status
from plugwire._transports._pool import RestartPolicy
from plugwire._transports.subprocess import SubprocessOptions, SubprocessTransport
from tests.support.procguard import manager_for, python_plugin

pytestmark = pytest.mark.usefixtures("no_leaks")

FAST = SubprocessOptions(grace=0.5, kill_after=0.5, restart=RestartPolicy(initial_backoff=0.01, max_backoff=0.02))


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""


class Resp(msgspec.Struct):
    text: str
    pid: int = 0


def config() -> plugwire.PluginConfig:
    # Checks only when the test asks (manager.health()), so every step is deterministic.
    return plugwire.PluginConfig(
        name="echo",
        health_check=plugwire.HealthCheckConfig(interval=3600, timeout=5, failure_limit=2),
        connection=plugwire.ConnectionConfig(max_connections=1),
    )


async def test_an_unhealthy_plugin_is_restarted_by_the_monitor_and_serves_again() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py", options=FAST), config=config())
        before = (await manager.execute("echo", Req())).pid
        await manager.execute("echo", Req(op="sick"))
        first = (await manager.health())["echo"]
        assert (first.status, first.message) == (Status.DEGRADED, "plugin reports unhealthy: told to be sick (1 of 2)")
        second = (await manager.health())["echo"]
        assert second.status is Status.DEGRADED
        assert second.message.startswith("restarted")
        assert (await manager.execute("echo", Req())).pid != before
        assert (await manager.health())["echo"].status is Status.HEALTHY


async def test_a_killed_plugin_is_restarted_by_its_supervisor_and_reported_healthy() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py", options=FAST), config=config())
        transport = manager._entries["echo"].transport
        assert isinstance(transport, SubprocessTransport)
        pool = transport.pool
        assert pool is not None
        before = (await manager.execute("echo", Req())).pid
        with pytest.raises(plugwire.OutcomeUnknownError):
            await manager.execute("echo", Req(op="crash"))
        await pool.wait_for(lambda: pool.restarts == 1)
        report = (await manager.health())["echo"]
        assert report.status is Status.HEALTHY
        assert report.metadata["pids"] != str(before)
        assert (await manager.execute("echo", Req(text="back"))).text == "back"
