"""`replace()` of a gRPC plugin: a new server takes over without a gap; an unreachable one
is never switched to."""

from __future__ import annotations

import asyncio

import pytest

import plugwire
from plugwire.errors import ErrorCode, ReplacementError
from tests.support.grpc_support import Answer, Ask, EchoPlugin, ServeFactory

Manager = plugwire.AsyncPluginManager[Ask, Answer]


async def test_a_grpc_plugin_moves_to_a_new_server_and_a_held_call_finishes_on_the_old(
    serve: ServeFactory, manager: Manager
) -> None:
    old_plugin, new_plugin = EchoPlugin("old"), EchoPlugin("new")
    old = await serve(old_plugin)
    new = await serve(new_plugin)
    await manager.register(plugwire.grpc(old.address), name="remote")
    assert (await manager.execute("remote", Ask(text="a"))).server == "old"
    held = asyncio.create_task(manager.execute("remote", Ask(mode="hang")))
    await old_plugin.started.wait()

    result = await manager.replace("remote", plugwire.grpc(new.address), drain_timeout=0.05)

    assert (result.generation, result.cancelled) == (2, 1)
    assert (await manager.execute("remote", Ask(text="b"))).server == "new"
    with pytest.raises(plugwire.errors.DrainCancelledError):
        await held
    await asyncio.wait_for(old_plugin.cancelled.wait(), 10)  # the RPC was cancelled on the server


async def test_an_unreachable_grpc_server_is_not_switched_to(
    serve: ServeFactory, manager: Manager, unused_tcp_port: int
) -> None:
    old = await serve(EchoPlugin("old"))
    await manager.register(plugwire.grpc(old.address), name="remote")
    with pytest.raises(ReplacementError) as caught:
        await manager.replace("remote", plugwire.grpc(f"127.0.0.1:{unused_tcp_port}"))
    assert caught.value.code == ErrorCode.REPLACEMENT_FAILED
    assert "cannot be reached" in str(caught.value)
    assert (await manager.execute("remote", Ask(text="still"))).server == "old"
