"""Start with a plugin down: a gRPC plugin that cannot be reached at start is registered as
connecting (calls fail with 1603, not sent), its health monitor keeps connecting with a
growing wait, and once the server is up it serves. Meanwhile the other plugins work."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import plugwire
from plugwire import Status
from plugwire.errors import ErrorCode
from plugwire.testing import FakeClock
from tests.support.grpc_support import Answer, Ask, ServeFactory
from tests.support.procguard import python_plugin

pytestmark = pytest.mark.timeout(30)


async def test_a_grpc_plugin_down_at_start_connects_in_the_background_while_the_others_serve(
    serve: ServeFactory, unused_tcp_port: int
) -> None:
    clock = FakeClock()
    address = f"127.0.0.1:{unused_tcp_port}"
    builder = (
        plugwire.simple(Ask, Answer, clock=clock)
        .with_plugin("local", python_plugin("echo_plugin.py"))  # answers Ask with its text
        .with_plugin("remote", plugwire.grpc(address))
    )
    async with builder.build() as manager:  # the README's Quick start no longer fails here
        assert (await manager.execute("local", Ask(text="meanwhile"))).text == "meanwhile"
        with pytest.raises(plugwire.errors.PluginConnectingError) as caught:
            await manager.execute("remote", Ask(text="too early"))
        assert caught.value.code == ErrorCode.PLUGIN_CONNECTING
        assert caught.value.retryable
        assert isinstance(caught.value, plugwire.PluginUnavailableError)
        status = manager.list_plugins()["remote"]
        assert status.status is Status.OFFLINE
        assert status.metadata["connecting"] == "true"
        assert status.metadata["next_attempt_in"] == "0.500"

        await clock.wait_for_sleepers(2)  # both monitors: "local" checks, "remote" connects
        clock.advance(0.5)  # the second try, still nobody listening: the wait doubles
        await clock.wait_for_sleepers(2)
        status = manager.list_plugins()["remote"]
        assert status.status is Status.OFFLINE
        assert status.metadata["next_attempt_in"] == "1.000"
        assert status.metadata["connect_attempts"] == "2"

        await serve(address=address)
        clock.advance(1.0)  # the third try finds the server
        await clock.wait_for_sleepers(2)
        assert manager.list_plugins()["remote"].status is Status.HEALTHY
        answer = await manager.execute("remote", Ask(text="connected"))
        assert (answer.text, answer.server) == ("connected", "echo")
        assert manager.get_plugin("remote").info().version == "1.2.3"
        assert (await manager.execute("local", Ask(text="still"))).text == "still"


async def test_manager_health_tries_to_connect_a_connecting_plugin_now_and_it_is_announced_once_connected(
    serve: ServeFactory, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plugwire.manager")
    address = f"127.0.0.1:{unused_tcp_port}"
    registered = "registered plugin 'remote' (grpc, echo 1.2.3)"
    async with plugwire.AsyncPluginManager(Ask, Answer) as manager:
        await manager.register(plugwire.grpc(address), name="remote")
        said = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("plugin 'remote' cannot be reached yet (cannot connect") for m in said), said
        assert not any("healthy -> offline" in m for m in said), said  # it was never healthy
        assert (await manager.health())["remote"].status is Status.OFFLINE
        assert not any(registered in r.getMessage() for r in caplog.records)
        await serve(address=address)
        assert (await manager.health())["remote"].status is Status.HEALTHY
        assert sum(registered in r.getMessage() for r in caplog.records) == 1
        assert sum("'remote' health: offline -> healthy (connected)" in r.getMessage() for r in caplog.records) == 1
        assert (await manager.execute("remote", Ask(text="hi"))).text == "hi"


async def test_connect_in_background_can_be_turned_off_for_a_grpc_plugin(unused_tcp_port: int) -> None:
    config = plugwire.PluginConfig(name="down", connection=plugwire.ConnectionConfig(connect_in_background=False))
    async with plugwire.AsyncPluginManager(Ask, Answer) as manager:
        with pytest.raises(plugwire.TransportError) as caught:
            await manager.register(plugwire.grpc(f"127.0.0.1:{unused_tcp_port}"), config=config)
        assert caught.value.code == ErrorCode.CONNECT_FAILED
        assert "down" not in manager


async def test_an_executable_plugin_can_opt_in_and_starts_on_a_later_try(tmp_path: Path) -> None:
    state = tmp_path / "starts"
    state.write_text("1")  # raw_plugin's "crash-after-first" crashes on every start after the first
    config = plugwire.PluginConfig(
        name="raw", connection=plugwire.ConnectionConfig(connect_in_background=True, max_connections=1)
    )
    plugin = python_plugin("raw_plugin.py", "crash-after-first", RAW_PLUGIN_STATE=str(state))
    async with plugwire.AsyncPluginManager(Ask, Answer) as manager:
        await manager.register(plugin, config=config)
        with pytest.raises(plugwire.errors.PluginConnectingError):
            await manager.execute("raw", Ask(text="x"))
        assert "crashing on start 1" in manager.list_plugins()["raw"].message
        state.unlink()
        assert (await manager.health())["raw"].status is Status.HEALTHY
        assert (await manager.execute("raw", Ask(text="up"))).text == "up"
