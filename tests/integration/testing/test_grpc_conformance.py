"""`plugwire.testing.check_grpc_plugin`: a plugwire gRPC plugin passes; a server a host cannot
use fails the check with the very code a real host (a manager) raises on it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import plugwire
from plugwire import AsyncPluginManager, AuthConfig, AuthMethod, PluginError
from plugwire._codes import ErrorCode
from plugwire._proto import load, load_reflection
from plugwire._transports.grpc import GrpcTransport
from plugwire.sdk import GrpcPluginServer
from plugwire.security import ServerTLSConfig, TLSConfig
from plugwire.testing import ConformanceReport, Finding, check_grpc_plugin_async
from tests.support.grpc_certs import CertSet, make_cert_set
from tests.support.grpc_support import EchoPlugin, short_socket_path

# No `no_leaks` here, as in tests/integration/grpc/: grpc's core opens process-wide descriptors
# of its own, lazily and on its own threads. The suite's child-process check still applies.
MODS = load()


class NotQuitePlugin(MODS.pb2_grpc.PluginServicer):  # type: ignore[misc,name-defined]
    """plugwire.v1.Plugin served by hand: answers that a host refuses."""

    async def Info(self, request: Any, context: Any) -> Any:
        return MODS.pb2.InfoResponse(name="not-quite", version="0.1")

    async def Execute(self, request: Any, context: Any) -> Any:
        return MODS.pb2.ExecuteResponse(payload=b"\xc1", content_type=request.content_type)  # 0xc1: never msgpack

    async def Health(self, request: Any, context: Any) -> Any:
        return MODS.pb2.HealthResponse(status="sleepy")


RawServer = Callable[[Any], Awaitable[str]]


@pytest.fixture
async def raw_server(tmp_path: Path) -> AsyncIterator[RawServer]:
    """A bare grpc.aio server on a unix socket; `add(server)` registers the services."""
    servers: list[Any] = []

    async def start(add: Any) -> str:
        server = MODS.aio.server()
        add(server)
        address = f"unix:{short_socket_path(tmp_path, f'raw{len(servers)}.sock')}"
        server.add_insecure_port(address)
        await server.start()
        servers.append(server)
        return address

    yield start
    for server in servers:
        await server.stop(None)


def finding(report: ConformanceReport, check: str) -> Finding:
    return next(f for f in report.findings if f.check == check)


async def test_a_plugwire_grpc_plugin_passes_every_check_reflection_included(tmp_path: Path) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    async with GrpcPluginServer(EchoPlugin(), address=address) as server:
        assert server.reflection
        report = await check_grpc_plugin_async(address, request={"text": "hi"})
    assert report.ok, str(report)
    assert report.failures == (), str(report)
    assert [f.check for f in report.findings] == [
        "info",
        "info-name",
        "call",
        "call-json",
        "concurrent-calls",
        "health",
        "grpc-health",
        "reflection",
    ]
    assert report.subject == f"gRPC {address}"


async def test_a_plugin_error_is_an_answer_and_passes_the_call_check(tmp_path: Path) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    async with GrpcPluginServer(EchoPlugin(), address=address):
        report = await check_grpc_plugin_async(address, request={"mode": "boom"})
    call = finding(report, "call")
    assert call.passed
    assert f"{ErrorCode.EXECUTION_FAILED}" in call.detail


async def test_a_server_without_the_plugin_service_fails_info_with_the_code_a_manager_raises(
    raw_server: RawServer,
) -> None:
    address = await raw_server(
        lambda server: MODS.health_pb2_grpc.add_HealthServicer_to_server(MODS.health.HealthServicer(), server)
    )
    report = await check_grpc_plugin_async(address, timeout=2.0)
    info = finding(report, "info")
    assert not report.ok
    assert not info.passed
    async with AsyncPluginManager(Any, Any) as manager:
        with pytest.raises(PluginError) as caught:
            await manager.register(
                plugwire.grpc(address),
                config=plugwire.PluginConfig(
                    name="raw", connection=plugwire.ConnectionConfig(connect_in_background=False)
                ),
            )
    assert info.code == caught.value.code == ErrorCode.PROTOCOL
    assert "does not implement plugwire.v1.Plugin" in info.detail


async def test_answers_a_host_refuses_fail_with_the_codes_the_host_raises(raw_server: RawServer) -> None:
    address = await raw_server(lambda server: MODS.pb2_grpc.add_PluginServicer_to_server(NotQuitePlugin(), server))
    report = await check_grpc_plugin_async(address, timeout=2.0)
    assert finding(report, "info").passed
    async with AsyncPluginManager(Any, Any) as manager:
        await manager.register(plugwire.grpc(address), name="raw")
        with pytest.raises(PluginError) as called:
            await manager.execute("raw", {})
    call = finding(report, "call")
    assert not call.passed
    assert call.code == called.value.code == ErrorCode.RESPONSE_INVALID
    transport = GrpcTransport("raw", address)
    try:
        await transport.start()
        with pytest.raises(PluginError) as health:
            await transport.health()
    finally:
        await transport.aclose()
    assert finding(report, "health").code == health.value.code
    # No standard health service and no reflection: recommendations, not requirements.
    assert {f.check for f in report.failures if f.severity == "should"} == {"call-json", "grpc-health", "reflection"}


async def test_reflection_can_be_turned_off_and_the_check_warns(tmp_path: Path) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    async with GrpcPluginServer(EchoPlugin(), address=address, reflection=False) as server:
        assert not server.reflection
        report = await check_grpc_plugin_async(address)
    reflection = finding(report, "reflection")
    assert not reflection.passed
    assert reflection.severity == "should"
    assert "UNIMPLEMENTED" in reflection.detail
    assert report.ok


async def test_reflection_lists_the_plugin_and_health_services_to_a_reflection_client(tmp_path: Path) -> None:
    # grpcio-reflection's own client: it reads the schema through the server, no .proto needed.
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    def ask(address: str) -> tuple[list[str], Any]:
        with MODS.grpc.insecure_channel(address) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            return list(database.get_services()), database.FindFileContainingSymbol("plugwire.v1.Plugin")

    address = f"unix:{short_socket_path(tmp_path)}"
    async with GrpcPluginServer(EchoPlugin(), address=address):
        # A blocking client, in a thread: the server answers on this test's event loop.
        services, plugin_file = await asyncio.to_thread(ask, address)
    assert {"plugwire.v1.Plugin", "grpc.health.v1.Health"} <= set(services)
    assert plugin_file.package == "plugwire.v1"
    assert [s.name for s in plugin_file.service] == ["Plugin"]
    assert {m.name for m in plugin_file.service[0].method} == {"Execute", "Health", "Info"}
    assert load_reflection()[0].SERVICE_NAME in services


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_cert_set(tmp_path_factory.mktemp("certs"))


async def test_a_tls_plugin_passes_with_the_right_ca_and_mtls(tmp_path: Path, certs: CertSet) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    server_tls = ServerTLSConfig(
        cert_file=str(certs.server.cert),
        key_file=str(certs.server.key),
        client_ca_file=str(certs.ca.cert_file),
        require_client_cert=True,
    )
    tls = TLSConfig(ca_file=str(certs.ca.cert_file), cert_file=str(certs.client.cert), key_file=str(certs.client.key))
    async with GrpcPluginServer(EchoPlugin(), address=address, tls=server_tls):
        report = await check_grpc_plugin_async(address, tls=tls)
        assert report.ok, str(report)
        # Without a client certificate nothing can be checked: the error a host raises connecting.
        with pytest.raises(PluginError) as caught:
            await check_grpc_plugin_async(address, tls=TLSConfig(ca_file=str(certs.ca.cert_file)), timeout=2.0)
    assert caught.value.code == ErrorCode.AUTH_CLIENT_CERT_REQUIRED


async def test_credentials_a_plugin_refuses_are_a_setup_error_and_the_right_ones_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    monkeypatch.setenv("CHECK_TEST_KEY", "right-key")
    auth = AuthConfig(method=AuthMethod.API_KEY, api_key_env="CHECK_TEST_KEY")
    async with GrpcPluginServer(EchoPlugin(), address=address, auth=auth):
        assert (await check_grpc_plugin_async(address, auth=auth)).ok
        with pytest.raises(plugwire.errors.AuthenticationError):
            await check_grpc_plugin_async(address, auth=AuthConfig(method=AuthMethod.API_KEY, api_key="wrong"))


def test_a_stdio_plugin_never_imports_grpc_reflection() -> None:
    # Reflection is imported when a gRPC server starts: a subprocess plugin pays nothing for it.
    code = "import sys, plugwire, plugwire.sdk; print(sorted(m for m in sys.modules if m.startswith('grpc')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert run.stdout.strip() == "[]"
