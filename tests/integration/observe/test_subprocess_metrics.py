"""Metrics of a real subprocess plugin: its live processes, crash restarts and health-check
restarts, and the codes of its failures as they crossed the process boundary."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

import plugwire
from plugwire._transports.subprocess import SubprocessTransport
from tests.support.echo_types import Req, Resp
from tests.support.procguard import python_plugin

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_leaks")]


ON = plugwire.ManagerConfig(metrics=plugwire.MetricsConfig(enabled=True))


async def test_processes_restarts_and_failure_codes_of_a_subprocess_plugin() -> None:
    async with plugwire.AsyncPluginManager(Req, Resp, ON) as manager:
        await manager.register(python_plugin("echo_plugin.py"), name="echo")
        first = await manager.execute("echo", Req(text="hi"))
        with pytest.raises(plugwire.ExecutionError):
            await manager.execute("echo", Req(op="boom", text="bad"))
        with pytest.raises(plugwire.PluginTimeoutError):
            await manager.execute("echo", Req(op="late", text="too slow"))
        before = manager.get_metrics().plugins["echo"]
        assert (before.transport, before.processes, before.restarts) == ("executable", 1, 0)
        assert before.failures_by_code == {1203: 1, 1204: 1}

        transport = manager._entries["echo"].transport
        assert isinstance(transport, SubprocessTransport)
        restarted = asyncio.Event()
        transport.listeners.append(lambda event, fields: restarted.set() if event == "restarted" else None)
        os.kill(first.pid, signal.SIGKILL)
        await restarted.wait()
        assert (await manager.execute("echo", Req(text="back"))).pid != first.pid
        after = manager.get_metrics().plugins["echo"]
        assert (after.processes, after.restarts) == (1, 1)
        assert after.requests_success == 2

        # A restart the health monitor asks for (the plugin reports unhealthy) counts too.
        await manager.execute("echo", Req(op="sick"))
        config_limit = manager._entries["echo"].config.health_check.failure_limit
        for _ in range(config_limit):
            await manager.health()
        healed = manager.get_metrics().plugins["echo"]
        assert healed.health_check_failures == config_limit
        assert healed.restarts == 2
        assert healed.processes == 1
