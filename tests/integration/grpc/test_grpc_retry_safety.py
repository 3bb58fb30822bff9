"""A gRPC call cut off by a stopping server runs once unless it is idempotent (issue 15, item 1).

Two real replicas on loopback behind one target: without the rule, the cut call was retried
on the other replica and the work ran twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import plugwire
from plugwire import AsyncPluginManager, ExecutionContext
from plugwire.errors import RequestSent
from plugwire.sdk import GrpcPluginServer
from tests.support.grpc_support import Answer, Ask, EchoPlugin, ServeFactory

Manager = AsyncPluginManager[Ask, Answer]


class HangsOnce(EchoPlugin):
    """The first `hang` call across the replicas hangs (until its server stops); later ones answer."""

    def __init__(self, name: str, shared: dict[str, bool]) -> None:
        super().__init__(name)
        self.shared = shared

    async def execute(self, ctx: plugwire.ExecutionContext, request: Ask) -> Any:
        if request.mode == "hang" and self.shared.get("hung"):
            self.calls += 1
            return Answer(text="done", server=self.name)
        self.shared["hung"] = True
        return await super().execute(ctx, request)


async def two_replicas(serve: ServeFactory) -> tuple[list[HangsOnce], list[GrpcPluginServer], str]:
    shared: dict[str, bool] = {}
    plugins = [HangsOnce("a", shared), HangsOnce("b", shared)]
    servers = [await serve(plugin) for plugin in plugins]
    return plugins, servers, "ipv4:" + ",".join(server.address for server in servers)


async def stop_the_one_working(plugins: list[HangsOnce], servers: list[GrpcPluginServer]) -> None:
    started = [asyncio.ensure_future(plugin.started.wait()) for plugin in plugins]
    done, pending = await asyncio.wait(started, return_when=asyncio.FIRST_COMPLETED)
    for waiter in pending:
        waiter.cancel()
    await servers[started.index(done.pop())].aclose(0)


async def test_a_call_cut_off_by_a_stopping_server_is_not_retried_on_another_replica(
    serve: ServeFactory, manager: Manager
) -> None:
    plugins, servers, target = await two_replicas(serve)
    await manager.register(plugwire.grpc(target), name="replicated")

    call = asyncio.ensure_future(manager.execute("replicated", Ask(mode="hang")))
    await stop_the_one_working(plugins, servers)
    with pytest.raises(plugwire.PluginError) as caught:
        await call

    assert sum(plugin.calls for plugin in plugins) == 1  # ran once, on the stopped replica
    assert caught.value.request_sent is RequestSent.MAYBE
    assert caught.value.retryable  # the plugin is unavailable; repeating is the caller's choice
    assert "attempts" not in caught.value.details


async def test_an_idempotent_call_cut_off_by_a_stopping_server_is_retried_on_another_replica(
    serve: ServeFactory, manager: Manager
) -> None:
    plugins, servers, target = await two_replicas(serve)
    await manager.register(plugwire.grpc(target), name="replicated")

    call = manager.execute("replicated", Ask(mode="hang"), ExecutionContext(idempotent=True))
    task = asyncio.ensure_future(call)
    await stop_the_one_working(plugins, servers)
    answer = await task

    assert answer.text == "done"
    assert sum(plugin.calls for plugin in plugins) == 2


async def test_a_call_that_cannot_connect_was_not_sent_and_is_retried(serve: ServeFactory, manager: Manager) -> None:
    server = await serve(EchoPlugin())
    await manager.register(plugwire.grpc(server.address), name="gone")
    await server.aclose(0)

    with pytest.raises(plugwire.TransportError) as caught:
        await manager.execute("gone", Ask())

    assert caught.value.code == plugwire.errors.ErrorCode.CONNECT_FAILED
    assert caught.value.request_sent is RequestSent.NO
    assert caught.value.details["attempts"] == 4  # the default retries, all made
