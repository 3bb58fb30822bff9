"""The plugin-side server as a foreign gRPC client sees it, and its edge cases."""

from __future__ import annotations

import grpc
import pytest

import plugwire
from plugwire import AsyncPluginManager, ExecutionContext, HealthStatus, PluginInfo, Status
from plugwire._proto import load
from plugwire._transports.base import Call
from plugwire._transports.grpc import GrpcTransport
from plugwire.errors import ErrorCode
from tests.support.grpc_support import Answer, Ask, EchoPlugin, ServeFactory

MODS = load()
Manager = AsyncPluginManager[Ask, Answer]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.AUTH_INVALID_CREDENTIALS, grpc.StatusCode.UNAUTHENTICATED),
        (ErrorCode.AUTH_PERMISSION_DENIED, grpc.StatusCode.PERMISSION_DENIED),
        (ErrorCode.REQUEST_INVALID, grpc.StatusCode.INVALID_ARGUMENT),
        (ErrorCode.TIMEOUT, grpc.StatusCode.DEADLINE_EXCEEDED),
        (ErrorCode.CONNECT_FAILED, grpc.StatusCode.UNAVAILABLE),
        (ErrorCode.PLUGIN_OFFLINE, grpc.StatusCode.UNAVAILABLE),
        (ErrorCode.RATE_LIMITED, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (ErrorCode.PLUGIN_NOT_FOUND, grpc.StatusCode.NOT_FOUND),
        (ErrorCode.CONFIG_INVALID_VALUE, grpc.StatusCode.FAILED_PRECONDITION),
        (ErrorCode.PROTOCOL, grpc.StatusCode.INTERNAL),
        (ErrorCode.EXECUTION_FAILED, grpc.StatusCode.UNKNOWN),
    ],
)
async def test_plugin_errors_become_grpc_statuses_with_the_code_in_trailers(
    serve: ServeFactory, manager: Manager, code: int, status: grpc.StatusCode
) -> None:
    server = await serve()
    request = MODS.pb2.ExecuteRequest(payload=plugwire.sdk.TypedCodec(Ask).encode(Ask(mode="coded", size=code)))
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await MODS.pb2_grpc.PluginStub(channel).Execute(request, timeout=5)
    assert caught.value.code() == status
    assert ("plugwire-code", str(code)) in tuple(caught.value.trailing_metadata())
    # ...and a plugwire host rebuilds the exact error.
    await manager.register(plugwire.grpc(server.address), name="p")
    with pytest.raises(plugwire.PluginError) as rebuilt:
        await manager.execute("p", Ask(mode="coded", size=code))
    assert rebuilt.value.code == code


async def test_an_unknown_content_type_is_refused_as_an_invalid_request(serve: ServeFactory) -> None:
    server = await serve()
    request = MODS.pb2.ExecuteRequest(payload=b"{}", content_type="text/csv")
    async with grpc.aio.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await MODS.pb2_grpc.PluginStub(channel).Execute(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text/csv" in (caught.value.details() or "")


async def test_a_request_of_the_wrong_shape_is_refused_by_the_plugin_side(serve: ServeFactory) -> None:
    server = await serve()
    async with AsyncPluginManager(dict, Answer) as mgr:
        await mgr.register(plugwire.grpc(server.address), name="p")
        with pytest.raises(plugwire.errors.RequestValidationError) as caught:
            await mgr.execute("p", {"text": 42})
    assert caught.value.details.get("field") == "text"


async def test_listening_on_a_busy_address_is_a_coded_error(serve: ServeFactory) -> None:
    first = await serve()
    with pytest.raises(plugwire.TransportError) as caught:
        await serve(address=first.address)
    assert caught.value.code == ErrorCode.CONNECT_FAILED


class SickPlugin(EchoPlugin):
    def __init__(self, failure: str) -> None:
        super().__init__("sick")
        self.failure = failure

    async def health(self) -> HealthStatus:
        if self.failure == "raise":
            raise RuntimeError("disk on fire")
        return HealthStatus(status=Status.DEGRADED, message="slow disk")


async def test_plugin_health_is_reported_and_a_failing_health_check_counts_as_a_failure(
    serve: ServeFactory, manager: Manager
) -> None:
    degraded = await serve(SickPlugin("degraded"))
    broken = await serve(SickPlugin("raise"))
    await manager.register(plugwire.grpc(degraded.address), name="degraded")
    await manager.register(plugwire.grpc(broken.address), name="broken")
    report = await manager.health()
    assert (report["degraded"].status, report["degraded"].message) == (Status.DEGRADED, "slow disk")
    # One failed check of failure_limit=3: degraded (the monitor's rules, docs/resilience.md).
    assert report["broken"].status is Status.DEGRADED
    assert "disk on fire" in report["broken"].message
    assert report["broken"].metadata["consecutive_failures"] == "1"


class BadInfo(EchoPlugin):
    def info(self) -> PluginInfo:
        raise RuntimeError("no info today")


async def test_a_plugin_whose_info_fails_cannot_be_registered(serve: ServeFactory, manager: Manager) -> None:
    server = await serve(BadInfo())
    with pytest.raises(plugwire.errors.ProtocolError, match="no info today"):
        await manager.register(plugwire.grpc(server.address), name="p")


async def test_a_closed_transport_refuses_calls_with_a_coded_error(serve: ServeFactory) -> None:
    server = await serve()
    transport = GrpcTransport("p", server.address)
    assert (await transport.start()).name == "echo"
    await transport.aclose()
    await transport.aclose()  # idempotent
    with pytest.raises(plugwire.TransportError) as call_error:
        await transport.call(Call(plugin="p", payload=b"\x80", context=ExecutionContext()))
    with pytest.raises(plugwire.TransportError) as health_error:
        await transport.health()
    assert call_error.value.code == ErrorCode.CONNECTION_LOST
    assert health_error.value.code == ErrorCode.CONNECTION_LOST


async def test_stopping_the_server_closes_the_plugin_once(serve: ServeFactory) -> None:
    plugin = EchoPlugin()
    server = await serve(plugin)
    await server.aclose(0)
    await server.aclose(0)
    assert plugin.closed


async def test_stop_is_the_deprecated_spelling_of_aclose(serve: ServeFactory) -> None:
    plugin = EchoPlugin()
    server = await serve(plugin)
    with pytest.warns(DeprecationWarning, match=r"GrpcPluginServer.stop\(\) is deprecated.*use aclose\(\)"):
        await server.stop(0)
    assert plugin.closed
    assert server.stopping
