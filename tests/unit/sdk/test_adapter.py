from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

import pytest

import plugwire
from plugwire import ExecutionContext, PluginInfo, Status
from plugwire._codec import encode
from plugwire._sdk.adapter import PluginAdapter, resolve_types
from tests.support.sample_plugins import AuthPlugin, AuthRequest, AuthResponse


@dataclasses.dataclass
class Ping:
    n: int


class Annotated:
    def info(self) -> PluginInfo:
        return PluginInfo(name="annotated")

    async def execute(self, ctx: ExecutionContext, request: Ping) -> Ping:
        return Ping(request.n + 1)


class Untyped:
    def info(self) -> dict[str, str]:
        return {"name": "untyped", "version": "2"}

    def execute(self, ctx, request):  # type: ignore[no-untyped-def]
        return request


def test_types_come_from_generic_bases_then_annotations_then_any() -> None:
    assert resolve_types(AuthPlugin()) == (AuthRequest, AuthResponse)
    assert resolve_types(Annotated()) == (Ping, Ping)
    assert resolve_types(Untyped()) == (Any, Any)
    assert resolve_types(Untyped(), int, str) == (int, str)


async def test_the_adapter_decodes_runs_and_encodes() -> None:
    adapter = PluginAdapter(Annotated())
    assert await adapter.execute(ExecutionContext(), encode({"n": 1})) == encode({"n": 2})
    assert await adapter.execute(ExecutionContext(), encode({"n": 1}, "json"), "json") == b'{"n":2}'


async def test_plain_def_plugins_and_mapping_info_are_accepted() -> None:
    adapter = PluginAdapter(Untyped())
    assert adapter.info() == PluginInfo(name="untyped", version="2")
    assert await adapter.execute(ExecutionContext(), encode([1, "x"])) == encode([1, "x"])
    assert (await adapter.health()).status is Status.HEALTHY
    await adapter.close()
    await adapter.close()


def test_an_object_without_execute_is_not_a_plugin() -> None:
    with pytest.raises(plugwire.errors.InvalidPluginError, match="is not a plugin"):
        PluginAdapter(object())


async def test_bad_info_and_bad_health_are_type_errors() -> None:
    class Bad(Untyped):
        def info(self) -> Any:
            return 42

        async def health(self) -> Any:
            return "fine"

    adapter = PluginAdapter(Bad())
    with pytest.raises(plugwire.errors.InvalidPluginError, match="must return PluginInfo"):
        adapter.info()
    with pytest.raises(TypeError, match="must return HealthStatus"):
        await adapter.health()


async def test_an_unencodable_result_is_an_execution_error() -> None:
    class Weird(Untyped):
        def execute(self, ctx, request):  # type: ignore[no-untyped-def]
            return object()

    adapter = PluginAdapter(Weird())
    try:
        with pytest.raises(plugwire.ExecutionError, match="cannot be encoded"):
            await adapter.execute(ExecutionContext(), encode(1))
    finally:
        await adapter.close()  # its worker thread ends with it


async def test_plugin_errors_raised_by_a_plugin_pass_through() -> None:
    class Refuses(Untyped):
        async def execute(self, ctx, request):  # type: ignore[no-untyped-def]
            raise plugwire.ExecutionError("quota exceeded", retryable=True)

    with pytest.raises(plugwire.ExecutionError) as caught:
        await PluginAdapter(Refuses()).execute_object(ExecutionContext(), 1)
    assert caught.value.retryable is True
    assert caught.value.__cause__ is None


async def test_a_plain_def_health_is_answered_while_every_worker_is_in_a_call() -> None:
    release = threading.Event()

    class Blocking:
        def info(self) -> PluginInfo:
            return PluginInfo(name="blocking", version="1.0.0")

        def execute(self, ctx: ExecutionContext, request: dict[str, Any]) -> dict[str, Any]:
            release.wait(20)
            return request

        def health(self) -> plugwire.HealthStatus:
            return plugwire.HealthStatus(status=Status.HEALTHY, message="fine")

    adapter = PluginAdapter(Blocking(), max_threads=1)
    calls = [asyncio.ensure_future(adapter.execute_object(ExecutionContext(), {"n": i})) for i in range(3)]
    try:
        await asyncio.sleep(0)  # the calls hold the one worker and queue behind it
        status = await asyncio.wait_for(adapter.health(), 10)  # not behind the queued calls
        assert status.message == "fine"
        assert not any(call.done() for call in calls)
    finally:
        release.set()
        assert [r["n"] for r in await asyncio.gather(*calls)] == [0, 1, 2]
        await adapter.close()
