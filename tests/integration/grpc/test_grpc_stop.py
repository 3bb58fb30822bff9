"""A gRPC plugin's graceful stop, and the standard health service a probe asks.

Real servers on unix sockets; the probe is the `grpc.health.v1` client stub a Kubernetes gRPC
probe uses; in-flight calls are held open by events the test controls.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import plugwire
from plugwire import ExecutionContext, HealthStatus, Status
from plugwire._proto import SERVICE_NAME, load
from plugwire._sdk import grpc_health, grpc_server
from plugwire._sdk import serve as serve_module
from plugwire.sdk import GrpcPluginServer
from tests.support.grpc_support import Answer, Ask, EchoPlugin, ServeFactory, short_socket_path

MODS = load()
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DOCS = Path(__file__).resolve().parents[3] / "docs" / "grpc.md"


class GatedPlugin(EchoPlugin):
    """`execute` waits for the test to open its gate; `health()` says what the test sets.

    With `health_gate` set, `health()` first waits for that event (a stuck health check).
    """

    def __init__(self) -> None:
        super().__init__("gated")
        self.gate = asyncio.Event()
        self.health_status: HealthStatus | Exception = HealthStatus(status=Status.HEALTHY, message="ok")
        self.health_gate: asyncio.Event | None = None
        self.health_asked = asyncio.Event()

    async def execute(self, ctx: ExecutionContext, request: Ask) -> Any:
        if request.mode == "gated":
            self.started.set()
            await self.gate.wait()
        return await super().execute(ctx, request)

    async def health(self) -> HealthStatus:
        if self.health_gate is not None:
            self.health_asked.set()
            await self.health_gate.wait()
        if isinstance(self.health_status, Exception):
            raise self.health_status
        return self.health_status


@pytest.fixture
async def gated(serve: ServeFactory, tmp_path: Path) -> AsyncIterator[tuple[GatedPlugin, GrpcPluginServer]]:
    plugin = GatedPlugin()
    server = await serve(plugin, address=f"unix:{short_socket_path(tmp_path)}")
    yield plugin, server
    plugin.gate.set()


async def probe(address: str, service: str = "") -> int:
    """One `grpc.health.v1.Health/Check`, on a fresh connection, as a probe makes it."""
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
    return int(answer.status)


def execute_request(mode: str, text: str = "") -> Any:
    return MODS.pb2.ExecuteRequest(payload=plugwire.sdk.TypedCodec(Ask).encode(Ask(mode=mode, text=text)))


def trailer_code(error: grpc.aio.AioRpcError) -> str:
    return dict(error.trailing_metadata() or ()).get("plugwire-code", "")


# ---------------------------------------------------------------- the graceful stop
@pytest.mark.faults
async def test_a_stopping_server_says_not_serving_and_refuses_new_calls_while_in_flight_calls_finish(
    gated: tuple[GatedPlugin, GrpcPluginServer],
) -> None:
    plugin, server = gated
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = MODS.pb2_grpc.PluginStub(channel)
        in_flight = asyncio.ensure_future(stub.Execute(execute_request("gated", "finish me"), timeout=30))
        await plugin.started.wait()
        assert await probe(server.address) == SERVING

        stopping = asyncio.ensure_future(server.aclose(30))
        await asyncio.sleep(0)  # one turn: aclose() has begun and waits for the call in flight
        assert server.stopping
        # The listener is still open: a probe connects and sees NOT_SERVING, for both names.
        assert await probe(server.address) == NOT_SERVING
        assert await probe(server.address, SERVICE_NAME) == NOT_SERVING
        # A new call is refused without running (1304, retryable: another replica may take it).
        calls_before = plugin.calls
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Execute(execute_request("", "too late"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert trailer_code(refused.value) == str(plugwire.errors.ErrorCode.PLUGIN_STOPPING)
        assert plugin.calls == calls_before
        assert not stopping.done()
        assert not plugin.closed

        plugin.gate.set()  # the call in flight finishes within the grace...
        answer = MODS.pb2.ExecuteResponse.FromString((await in_flight).SerializeToString())
    assert plugwire.sdk.TypedCodec(Answer).decode(answer.payload).text == "finish me"
    await stopping  # ...and only then does the server close and the plugin's close() run
    assert plugin.closed


@pytest.mark.faults
async def test_a_call_still_running_when_the_grace_ends_is_cancelled_and_answered_1207(
    gated: tuple[GatedPlugin, GrpcPluginServer], capfd: pytest.CaptureFixture[str]
) -> None:
    plugin, server = gated
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = asyncio.ensure_future(MODS.pb2_grpc.PluginStub(channel).Execute(execute_request("hang"), timeout=30))
        await plugin.started.wait()
        await server.aclose(0)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
    # The plugin's work was cancelled; the host learns the outcome is unknown (the exact code).
    assert plugin.cancelled.is_set()
    assert trailer_code(caught.value) == str(plugwire.errors.ErrorCode.OUTCOME_UNKNOWN)
    assert plugin.closed
    assert "Traceback" not in capfd.readouterr().err  # grpc prints one for a handler it cancels


@pytest.mark.faults
async def test_a_plugwire_host_sees_the_cut_off_call_as_outcome_unknown(
    gated: tuple[GatedPlugin, GrpcPluginServer],
) -> None:
    plugin, server = gated
    config = plugwire.PluginConfig(name="p", retry=plugwire.RetryConfig(max_retries=0))
    async with plugwire.AsyncPluginManager(Ask, Answer) as manager:
        await manager.register(plugwire.grpc(server.address), name="p", config=config)
        call = asyncio.ensure_future(manager.execute("p", Ask(mode="gated"), ExecutionContext(timeout=30)))
        await plugin.started.wait()
        await server.aclose(0)
        with pytest.raises(plugwire.OutcomeUnknownError) as caught:
            await call
    assert caught.value.code == plugwire.errors.ErrorCode.OUTCOME_UNKNOWN


def test_the_grace_of_a_grpc_plugin_is_the_documented_one(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = re.search(
        r"calls in flight get `grace` seconds \(default (\d+(?:\.\d+)?)\)", DOCS.read_text(), re.IGNORECASE
    )
    assert documented is not None, "docs/grpc.md no longer states the default grace"
    assert float(documented.group(1)) == grpc_server.DEFAULT_GRACE
    assert inspect.signature(grpc_server.serve_grpc).parameters["grace"].default == grpc_server.DEFAULT_GRACE
    assert inspect.signature(GrpcPluginServer).parameters["grace"].default == grpc_server.DEFAULT_GRACE
    # serve(transport="grpc") without a grace hands serve_grpc the same default.
    given: dict[str, Any] = {}
    monkeypatch.setattr(grpc_server, "serve_grpc", lambda plugin, **options: given.update(options))
    with pytest.raises(SystemExit) as exited:
        serve_module.serve(EchoPlugin(), transport="grpc", address="127.0.0.1:0")
    assert exited.value.code == 0
    assert given["grace"] == grpc_server.DEFAULT_GRACE


# ---------------------------------------------------------------- health follows the plugin
@pytest.mark.parametrize(
    ("health", "expected"),
    [
        (HealthStatus(status=Status.HEALTHY, message="ok"), SERVING),
        (HealthStatus(status=Status.DEGRADED, message="slow disk"), SERVING),
        (HealthStatus(status=Status.UNHEALTHY, message="database down"), NOT_SERVING),
        (HealthStatus(status=Status.OFFLINE, message="maintenance"), NOT_SERVING),
        (RuntimeError("disk on fire"), NOT_SERVING),
    ],
    ids=["healthy", "degraded", "unhealthy", "offline", "raises"],
)
async def test_the_standard_health_service_follows_the_plugins_own_health(
    gated: tuple[GatedPlugin, GrpcPluginServer], health: HealthStatus | Exception, expected: int
) -> None:
    plugin, server = gated
    plugin.health_status = health
    assert await probe(server.address) == expected
    assert await probe(server.address, SERVICE_NAME) == expected
    async with grpc.aio.insecure_channel(server.address) as channel:
        listed = await health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest(), timeout=10)
    assert {name: int(answer.status) for name, answer in listed.statuses.items()} == {
        "": expected,
        SERVICE_NAME: expected,
    }


async def test_a_plugin_that_recovers_is_serving_again(gated: tuple[GatedPlugin, GrpcPluginServer]) -> None:
    plugin, server = gated
    plugin.health_status = HealthStatus(status=Status.UNHEALTHY, message="database down")
    assert await probe(server.address) == NOT_SERVING
    plugin.health_status = HealthStatus(status=Status.HEALTHY, message="back")
    assert await probe(server.address) == SERVING


async def test_a_health_check_slower_than_the_probes_deadline_is_not_serving(
    gated: tuple[GatedPlugin, GrpcPluginServer],
) -> None:
    plugin, server = gated
    plugin.health_gate = asyncio.Event()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            # The answer comes within the probe's own deadline (else grpc reports DEADLINE_EXCEEDED).
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        assert answer.status == NOT_SERVING
    finally:
        plugin.health_gate.set()


@pytest.mark.faults
async def test_a_probe_waiting_for_a_stuck_health_check_is_answered_when_the_server_stops(
    gated: tuple[GatedPlugin, GrpcPluginServer], capfd: pytest.CaptureFixture[str]
) -> None:
    plugin, server = gated
    plugin.health_gate = asyncio.Event()
    async with grpc.aio.insecure_channel(server.address) as channel:
        check = asyncio.ensure_future(
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        )
        await plugin.health_asked.wait()
        await server.aclose(5)  # nothing in flight: the stop does not wait for the stuck health()
        assert (await check).status == NOT_SERVING
    assert "Traceback" not in capfd.readouterr().err  # grpc prints one for a handler it cancels


async def test_an_unknown_service_name_is_not_found(gated: tuple[GatedPlugin, GrpcPluginServer]) -> None:
    _, server = gated
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await probe(server.address, "no.such.Service")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_streams_health_changes_then_not_serving_at_stop_and_ends_cleanly(
    gated: tuple[GatedPlugin, GrpcPluginServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin, server = gated
    monkeypatch.setattr(grpc_health, "WATCH_INTERVAL", 0.05)  # read when a stream starts
    async with grpc.aio.insecure_channel(server.address) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        seen = [(await stream.read()).status]
        plugin.health_status = HealthStatus(status=Status.UNHEALTHY, message="database down")
        seen.append((await stream.read()).status)
        plugin.health_status = HealthStatus(status=Status.HEALTHY, message="back")
        seen.append((await stream.read()).status)
        stopping = asyncio.ensure_future(server.aclose(5))
        seen.append((await stream.read()).status)
        assert await stream.read() is grpc.aio.EOF  # the stream ends before the server closes...
        assert await stream.code() == grpc.StatusCode.OK  # ...with OK, not cut off
        await stopping
    assert seen == [SERVING, NOT_SERVING, SERVING, NOT_SERVING]
