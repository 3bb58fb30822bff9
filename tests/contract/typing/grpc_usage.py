"""Type-checked use of the gRPC, auth and TLS API, as a user writes it (never run)."""

from __future__ import annotations

from collections.abc import Mapping

import plugwire


class Request(plugwire.Plugin[str, str]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="typed")

    async def execute(self, ctx: plugwire.ExecutionContext, request: str) -> str:
        return request


class Provider:
    def __call__(self) -> Mapping[str, str]:
        return {"x-signature": "abc"}


class Verifier:
    def __call__(self, metadata: Mapping[str, str]) -> None:
        if metadata.get("x-signature") != "abc":
            raise plugwire.errors.AuthenticationError("bad", code=plugwire.errors.ErrorCode.AUTH_INVALID_CREDENTIALS)


async def host() -> str:
    provider: plugwire.security.CredentialProvider = Provider()
    tls = plugwire.security.TLSConfig(ca_file="ca.pem", cert_file="client.crt", key_file="client.key")
    source = plugwire.grpc("dns:///plugins.internal:9090", tls=tls, auth=provider)
    keyed = plugwire.grpc("unix:/run/p.sock", auth=plugwire.AuthConfig(method=plugwire.AuthMethod.API_KEY))
    manager: plugwire.AsyncPluginManager[str, str] = plugwire.AsyncPluginManager(str, str)
    async with manager:
        await manager.register(source, name="remote")
        await manager.register(keyed, name="local")
        return await manager.execute("remote", "hi")


async def plugin() -> None:
    verifier: plugwire.security.CredentialVerifier = Verifier()
    tls = plugwire.security.ServerTLSConfig(
        cert_file="s.crt", key_file="s.key", client_ca_file="ca.pem", require_client_cert=True
    )
    async with plugwire.sdk.GrpcPluginServer(Request(), address="127.0.0.1:0", tls=tls, auth=verifier) as server:
        bound: str = server.address
        port: int = server.port
        assert bound
        assert port >= 0


async def down_at_start() -> str | None:
    config = plugwire.PluginConfig(
        name="later", connection=plugwire.ConnectionConfig(connect_in_background=True, connection_timeout=2.0)
    )
    manager: plugwire.AsyncPluginManager[str, str] = plugwire.AsyncPluginManager(str, str)
    async with manager:
        await manager.register(plugwire.grpc("127.0.0.1:9090"), config=config)
        try:
            return await manager.execute("later", "hi")
        except plugwire.errors.PluginConnectingError as exc:
            retry: bool = exc.retryable
            assert retry
            return None


def blocking() -> None:
    plugwire.sdk.serve_grpc(Request(), address="127.0.0.1:9090", grace=2.0)


def conformance() -> list[int]:
    """The gRPC conformance checks, blocking and inside a loop; each failure's host code."""
    from plugwire.testing import ConformanceReport, Finding, check_grpc_plugin, check_grpc_plugin_async

    tls = plugwire.security.TLSConfig(ca_file="ca.pem")
    report: ConformanceReport = check_grpc_plugin("localhost:9090", request={"text": "hi"}, tls=tls, timeout=2.0)
    failures: tuple[Finding, ...] = report.failures
    codes = [f.code for f in failures]

    async def inside() -> bool:
        return (await check_grpc_plugin_async("unix:/run/plugin.sock", auth=Provider())).ok

    print(report.subject, report.address, inside)
    return codes


async def reflection_off() -> None:
    async with plugwire.sdk.GrpcPluginServer(Request(), address="127.0.0.1:0", reflection=False) as server:
        print(server.reflection)
