"""The gRPC transport against real in-process gRPC servers on loopback and unix sockets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import plugwire
from plugwire import AsyncPluginManager, ConnectionConfig, ExecutionContext, PluginConfig, Status
from plugwire._sources import source_for_config
from plugwire._transports.grpc import GrpcTransport, channel_options
from plugwire.errors import ErrorCode
from tests.support.dns_stub import DnsStub
from tests.support.grpc_support import Answer, Ask, EchoPlugin, ServeFactory, short_socket_path

Manager = AsyncPluginManager[Ask, Answer]


async def test_a_typed_request_round_trips_with_info_and_health(serve: ServeFactory, manager: Manager) -> None:
    server = await serve(EchoPlugin("backup-auth"))
    await manager.register(plugwire.grpc(server.address), name="backup")
    context = ExecutionContext(request_id="req-1", headers={"tenant": "acme"}, timeout=5)

    answer = await manager.execute("backup", Ask(text="hello"), context)

    assert answer.text == "hello"
    assert answer.server == "backup-auth"
    assert answer.request_id == "req-1"
    assert answer.headers == {"tenant": "acme"}
    assert answer.timeout is not None
    assert 0 < answer.timeout < 5.5  # grpc rounds deadlines up slightly
    info = manager.get_plugin("backup").info()
    assert (info.name, info.version, info.capabilities, info.metadata) == (
        "backup-auth",
        "1.2.3",
        ("echo",),
        {"kind": "test"},
    )
    assert (await manager.health())["backup"].status is Status.HEALTHY


async def test_a_unix_socket_target_works(serve: ServeFactory, manager: Manager, tmp_path: Path) -> None:
    server = await serve(address=f"unix:{short_socket_path(tmp_path)}")
    await manager.register(plugwire.grpc(server.address), name="local")
    assert (await manager.execute("local", Ask(text="over unix"))).text == "over unix"


async def test_the_json_codec_travels_with_its_content_type(serve: ServeFactory) -> None:
    server = await serve()
    async with AsyncPluginManager(Ask, Answer, codec="json") as mgr:
        await mgr.register(plugwire.grpc(server.address), name="j")
        assert (await mgr.execute("j", Ask(text="json"))).text == "json"


async def test_the_standard_grpc_health_service_reports_serving(serve: ServeFactory) -> None:
    server = await serve()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        overall = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        plugin = await stub.Check(health_pb2.HealthCheckRequest(service="plugwire.v1.Plugin"), timeout=5)
    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    assert plugin.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_server_not_running_at_start_fails_with_a_retryable_connect_error(unused_tcp_port: int) -> None:
    manager: Manager = AsyncPluginManager(Ask, Answer)
    async with manager:
        with pytest.raises(plugwire.TransportError) as caught:
            await manager.register(
                plugwire.grpc(f"127.0.0.1:{unused_tcp_port}"),
                config=plugwire.PluginConfig(
                    name="down", connection=plugwire.ConnectionConfig(connect_in_background=False)
                ),
            )
    assert caught.value.code == ErrorCode.CONNECT_FAILED
    assert caught.value.retryable
    assert "down" not in manager


async def test_the_deadline_is_enforced_and_the_plugin_sees_the_cancellation(
    serve: ServeFactory, manager: Manager
) -> None:
    plugin = EchoPlugin()
    server = await serve(plugin)
    await manager.register(plugwire.grpc(server.address), name="slow")

    with pytest.raises(plugwire.PluginTimeoutError) as caught:
        await manager.execute("slow", Ask(mode="hang"), ExecutionContext(timeout=0.3))

    assert caught.value.code == ErrorCode.TIMEOUT
    assert caught.value.retryable
    await asyncio.wait_for(plugin.cancelled.wait(), 5)


async def test_the_transport_enforces_the_attempt_timeout_with_the_timeout_policys_error(
    serve: ServeFactory, manager: Manager
) -> None:
    server = await serve(EchoPlugin())
    await manager.register(plugwire.grpc(server.address), name="slow")
    assert GrpcTransport.enforces_timeout  # the gRPC deadline bounds the attempt: no timer per call

    with pytest.raises(plugwire.PluginTimeoutError) as caught:
        await manager.execute("slow", Ask(mode="hang"), ExecutionContext(timeout=0.3, idempotent=True))

    assert caught.value.details["timeout"] == 0.3
    assert caught.value.details["attempt"] == caught.value.details["attempts"]  # each attempt timed out
    assert "grpc_status" not in caught.value.details  # not a bare status mapped from grpc
    assert caught.value.plugin == "slow"


async def test_cancelling_the_caller_cancels_the_call_on_the_plugin(serve: ServeFactory, manager: Manager) -> None:
    plugin = EchoPlugin()
    server = await serve(plugin)
    await manager.register(plugwire.grpc(server.address), name="p")

    task = asyncio.ensure_future(manager.execute("p", Ask(mode="hang")))
    await asyncio.wait_for(plugin.started.wait(), 5)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(plugin.cancelled.wait(), 5)


async def test_a_response_of_the_wrong_shape_is_a_coded_error(serve: ServeFactory, manager: Manager) -> None:
    server = await serve()
    await manager.register(plugwire.grpc(server.address), name="p")
    with pytest.raises(plugwire.errors.ResponseValidationError) as caught:
        await manager.execute("p", Ask(mode="wrong-shape"))
    assert caught.value.code == ErrorCode.RESPONSE_INVALID


async def test_a_reply_that_is_not_the_protocol_message_is_a_protocol_error(manager: Manager) -> None:
    async def garbage(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"\xff\xff\xff not protobuf"

    server = grpc.aio.server()
    handlers = {name: grpc.unary_unary_rpc_method_handler(garbage) for name in ("Execute", "Info", "Health")}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("plugwire.v1.Plugin", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        with pytest.raises(plugwire.errors.ProtocolError) as caught:
            await manager.register(plugwire.grpc(f"127.0.0.1:{port}"), name="junk")
    finally:
        await server.stop(0)
    assert caught.value.details["grpc_status"] == "INTERNAL"


async def test_a_request_larger_than_the_limit_is_refused_without_retry(serve: ServeFactory, manager: Manager) -> None:
    server = await serve()
    config = PluginConfig(name="small", connection=ConnectionConfig(max_message_size=4096))
    await manager.register(plugwire.grpc(server.address), config=config)

    with pytest.raises(plugwire.TransportError) as caught:
        await manager.execute("small", Ask(text="y" * 10_000))

    assert caught.value.code == ErrorCode.MESSAGE_TOO_LARGE
    assert not caught.value.retryable
    assert (await manager.execute("small", Ask(text="fits"))).text == "fits"


async def test_a_response_larger_than_the_limit_is_refused(serve: ServeFactory, manager: Manager) -> None:
    server = await serve()
    config = PluginConfig(name="small", connection=ConnectionConfig(max_message_size=4096))
    await manager.register(plugwire.grpc(server.address), config=config)
    with pytest.raises(plugwire.TransportError) as caught:
        await manager.execute("small", Ask(mode="big", size=10_000))
    assert caught.value.code == ErrorCode.MESSAGE_TOO_LARGE


async def test_a_server_limit_smaller_than_the_request_is_reported_as_too_large(
    serve: ServeFactory, manager: Manager
) -> None:
    server = await serve(max_message_size=2048)
    await manager.register(plugwire.grpc(server.address), name="strict")
    with pytest.raises(plugwire.TransportError) as caught:
        await manager.execute("strict", Ask(text="z" * 5000))
    assert caught.value.code == ErrorCode.MESSAGE_TOO_LARGE


@pytest.mark.parametrize(
    ("mode", "error", "code", "retryable"),
    [
        ("invalid", plugwire.errors.RequestValidationError, ErrorCode.REQUEST_INVALID, False),
        ("unavailable", plugwire.TransportError, ErrorCode.TRANSPORT_FAILED, True),
        ("boom", plugwire.ExecutionError, ErrorCode.EXECUTION_FAILED, False),
    ],
)
async def test_errors_raised_by_a_plugwire_plugin_keep_their_code(
    serve: ServeFactory, manager: Manager, mode: str, error: type[plugwire.PluginError], code: int, retryable: bool
) -> None:
    server = await serve()
    await manager.register(plugwire.grpc(server.address), name="p")
    with pytest.raises(error) as caught:
        await manager.execute("p", Ask(mode=mode))
    assert caught.value.code == code
    assert caught.value.retryable is retryable
    assert caught.value.plugin == "p"


@pytest.mark.parametrize(
    ("status", "error", "code", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, plugwire.TransportError, ErrorCode.TRANSPORT_FAILED, True),
        (grpc.StatusCode.INVALID_ARGUMENT, plugwire.errors.RequestValidationError, ErrorCode.REQUEST_INVALID, False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, plugwire.PluginTimeoutError, ErrorCode.TIMEOUT, True),
        (grpc.StatusCode.UNAUTHENTICATED, plugwire.errors.AuthenticationError, ErrorCode.AUTH_FAILED, False),
        (
            grpc.StatusCode.PERMISSION_DENIED,
            plugwire.errors.AuthenticationError,
            ErrorCode.AUTH_PERMISSION_DENIED,
            False,
        ),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, plugwire.RateLimitedError, ErrorCode.RATE_LIMITED, True),
        (grpc.StatusCode.UNIMPLEMENTED, plugwire.errors.ProtocolError, ErrorCode.PROTOCOL, False),
        (grpc.StatusCode.UNKNOWN, plugwire.ExecutionError, ErrorCode.EXECUTION_FAILED, False),
        (grpc.StatusCode.NOT_FOUND, plugwire.ExecutionError, ErrorCode.EXECUTION_FAILED, False),
        (grpc.StatusCode.ABORTED, plugwire.ExecutionError, ErrorCode.EXECUTION_FAILED, True),
        (grpc.StatusCode.CANCELLED, plugwire.OutcomeUnknownError, ErrorCode.OUTCOME_UNKNOWN, True),
        (grpc.StatusCode.DATA_LOSS, plugwire.TransportError, ErrorCode.TRANSPORT_FAILED, False),
    ],
)
async def test_a_foreign_grpc_plugin_status_maps_to_a_plugwire_error(
    serve: ServeFactory,
    manager: Manager,
    status: grpc.StatusCode,
    error: type[plugwire.PluginError],
    code: int,
    retryable: bool,
) -> None:
    """A server in another language answers with a bare gRPC status and no plugwire trailers."""
    good = await serve()

    async def failing(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(status, "no luck")
        raise AssertionError("unreachable")

    server = grpc.aio.server()
    handlers = {"Execute": grpc.unary_unary_rpc_method_handler(failing)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("plugwire.v1.Plugin", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    transport = GrpcTransport("foreign", f"127.0.0.1:{port}")
    try:
        transport._channel, transport._stub = transport._connect()  # no Info: the server has no such method
        transport._execute_request = transport._mods.pb2.ExecuteRequest
        call = plugwire._transports.base.Call(plugin="foreign", payload=b"\x80", context=ExecutionContext())
        with pytest.raises(error) as caught:
            await transport.call(call)
    finally:
        await transport.aclose()
        await server.stop(0)
    assert caught.value.code == code
    assert caught.value.retryable is retryable
    assert not isinstance(caught.value, grpc.RpcError)
    assert good.address  # the helper server stays up, unrelated


async def test_restart_reconnects_to_a_server_that_came_back(serve: ServeFactory, manager: Manager) -> None:
    first = await serve(EchoPlugin("first"))
    await manager.register(plugwire.grpc(first.address), name="p")
    assert (await manager.execute("p", Ask())).server == "first"
    address = first.address
    await first.aclose(0)

    with pytest.raises(plugwire.PluginError) as caught:
        await manager.execute("p", Ask())
    assert caught.value.retryable

    await serve(EchoPlugin("second"), address=address)
    transport = manager._entries["p"].transport
    info = await transport.restart()
    assert info.name == "second"
    assert (await manager.execute("p", Ask())).server == "second"


async def test_dns_targets_spread_calls_round_robin_over_every_address(serve: ServeFactory, manager: Manager) -> None:
    """A DNS name with two A records (two replicas) gets calls on both.

    `localhost` resolves only to 127.0.0.1 on this machine, so a stub DNS server on
    loopback serves the name; `dns://<server>/name:port` is grpc's syntax for asking it.
    """
    first = await serve(EchoPlugin("replica-a"), address="127.0.0.1:0")
    await serve(EchoPlugin("replica-b"), address=f"127.0.0.2:{first.port}")
    async with DnsStub({"plugins.test": ["127.0.0.1", "127.0.0.2"]}) as dns:
        await manager.register(plugwire.grpc(f"dns://127.0.0.1:{dns.port}/plugins.test:{first.port}"), name="rr")
        seen = [(await manager.execute("rr", Ask())).server for _ in range(20)]
    assert ("plugins.test", 1) in dns.queries
    assert set(seen) == {"replica-a", "replica-b"}
    assert abs(seen.count("replica-a") - seen.count("replica-b")) <= 2


async def test_a_config_described_grpc_plugin_gets_a_grpc_source(serve: ServeFactory) -> None:
    server = await serve(EchoPlugin("configured"))
    config = plugwire.ManagerConfig.from_dict(
        {"plugins": [{"name": "cfg", "transport": "grpc", "endpoint": server.address}]}
    )
    source = source_for_config(config.plugins[0])
    assert isinstance(source, plugwire._sources.Grpc)
    async with AsyncPluginManager(Ask, Answer, config=config) as mgr:
        assert (await mgr.execute("cfg", Ask(text="from config"))).server == "configured"


def test_connection_settings_become_channel_options() -> None:
    options = dict(
        channel_options(
            ConnectionConfig(connection_timeout=3, idle_timeout=60, max_message_size=1234, keep_alive=True),
            plugwire.security.TLSConfig(server_name="plugin.internal"),
        )
    )
    assert options["grpc.enable_retries"] == 0
    assert options["grpc.max_send_message_length"] == 1234
    assert options["grpc.max_receive_message_length"] == 1234
    assert options["grpc.min_reconnect_backoff_ms"] == 3000
    assert options["grpc.client_idle_timeout_ms"] == 60_000
    assert options["grpc.keepalive_time_ms"] > 0
    assert options["grpc.ssl_target_name_override"] == "plugin.internal"
    assert "round_robin" in options["grpc.service_config"]
    no_keepalive = dict(channel_options(ConnectionConfig(keep_alive=False)))
    assert "grpc.keepalive_time_ms" not in no_keepalive


def test_without_grpcio_asking_for_a_grpc_plugin_names_the_extra() -> None:
    script = """
import sys
sys.modules["grpc"] = None
import plugwire
class P:
    def info(self):
        return plugwire.PluginInfo(name="p")
    async def execute(self, ctx, request):
        return request
try:
    plugwire.grpc("127.0.0.1:1").create_transport(plugwire.PluginConfig(name="x"), None)
except plugwire.errors.MissingDependencyError as exc:
    print(exc.code, exc)
else:
    print("no error")
try:
    plugwire.sdk.GrpcPluginServer(P(), address="127.0.0.1:0")
except plugwire.errors.MissingDependencyError as exc:
    print(exc.code, exc)
else:
    print("no error")
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env, timeout=60
    )
    host, plugin = result.stdout.splitlines()
    for line in (host, plugin):
        assert line.startswith("1011 ")
        assert "pip install 'plugwire[grpc]'" in line
