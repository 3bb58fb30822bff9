"""TLS and mutual TLS over TCP and unix sockets, with certificates made for each test session."""

from __future__ import annotations

from pathlib import Path

import pytest

import plugwire
from plugwire import AsyncPluginManager, AuthConfig, AuthMethod
from plugwire.errors import ErrorCode
from plugwire.security import ServerTLSConfig, TLSConfig
from tests.support.grpc_certs import CertSet, Pair
from tests.support.grpc_support import Answer, Ask, EchoPlugin, ServeFactory, short_socket_path

Manager = AsyncPluginManager[Ask, Answer]


def server_tls(pair: Pair, client_ca: Path | None = None) -> ServerTLSConfig:
    return ServerTLSConfig(
        cert_file=str(pair.cert),
        key_file=str(pair.key),
        client_ca_file=str(client_ca) if client_ca else "",
        require_client_cert=client_ca is not None,
    )


def host_tls(ca: Path, client: Pair | None = None, server_name: str = "") -> TLSConfig:
    return TLSConfig(
        ca_file=str(ca),
        cert_file=str(client.cert) if client else "",
        key_file=str(client.key) if client else "",
        server_name=server_name,
    )


async def test_server_tls_over_tcp_works_with_the_right_ca(
    serve: ServeFactory, manager: Manager, certs: CertSet
) -> None:
    server = await serve(tls=server_tls(certs.server))
    await manager.register(plugwire.grpc(server.address, tls=host_tls(certs.ca.cert_file)), name="tls")
    assert (await manager.execute("tls", Ask(text="secret"))).text == "secret"


async def test_mutual_tls_over_a_unix_socket_works(
    serve: ServeFactory, manager: Manager, certs: CertSet, tmp_path: Path
) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    server = await serve(EchoPlugin("mtls"), address=address, tls=server_tls(certs.server, certs.ca.cert_file))
    tls = host_tls(certs.ca.cert_file, certs.client)
    await manager.register(plugwire.grpc(server.address, tls=tls), name="mtls")
    assert (await manager.execute("mtls", Ask(text="both ways"))).server == "mtls"


async def test_a_grpc_tls_config_with_mtls_auth_uses_the_auth_files(serve: ServeFactory, certs: CertSet) -> None:
    """The README's payment-service example: transport grpc-tls, auth method mtls."""
    server = await serve(tls=server_tls(certs.server, certs.ca.cert_file))
    config = plugwire.ManagerConfig.from_dict(
        {
            "plugins": [
                {
                    "name": "payment-service",
                    "transport": "grpc-tls",
                    "endpoint": server.address,
                    "auth": {
                        "method": "mtls",
                        "cert_file": str(certs.client.cert),
                        "key_file": str(certs.client.key),
                        "ca_file": str(certs.ca.cert_file),
                    },
                }
            ]
        }
    )
    async with AsyncPluginManager(Ask, Answer, config=config) as mgr:
        assert (await mgr.execute("payment-service", Ask(text="paid"))).text == "paid"


async def test_a_plugin_demanding_a_client_cert_refuses_a_host_without_one(
    serve: ServeFactory, manager: Manager, certs: CertSet
) -> None:
    server = await serve(tls=server_tls(certs.server, certs.ca.cert_file))
    with pytest.raises(plugwire.errors.AuthenticationError) as caught:
        await manager.register(plugwire.grpc(server.address, tls=host_tls(certs.ca.cert_file)), name="p")
    assert caught.value.code == ErrorCode.AUTH_CLIENT_CERT_REQUIRED
    assert not caught.value.retryable
    assert "client certificate" in str(caught.value)


async def test_a_client_cert_from_another_ca_is_refused(serve: ServeFactory, manager: Manager, certs: CertSet) -> None:
    server = await serve(tls=server_tls(certs.server, certs.ca.cert_file))
    tls = host_tls(certs.ca.cert_file, certs.stranger_client)
    with pytest.raises(plugwire.errors.AuthenticationError) as caught:
        await manager.register(plugwire.grpc(server.address, tls=tls), name="p")
    assert caught.value.code == ErrorCode.AUTH_CLIENT_CERT_REJECTED


async def test_a_server_cert_from_an_untrusted_ca_fails_clearly(
    serve: ServeFactory, manager: Manager, certs: CertSet
) -> None:
    server = await serve(tls=server_tls(certs.server))
    with pytest.raises(plugwire.TransportError) as caught:
        await manager.register(plugwire.grpc(server.address, tls=host_tls(certs.other_ca.cert_file)), name="p")
    assert caught.value.code == ErrorCode.TLS_CERT_UNTRUSTED
    assert not caught.value.retryable
    assert "trusted CA" in str(caught.value)


async def test_an_expired_server_cert_fails_clearly(serve: ServeFactory, manager: Manager, certs: CertSet) -> None:
    server = await serve(tls=server_tls(certs.expired_server))
    with pytest.raises(plugwire.TransportError) as caught:
        await manager.register(plugwire.grpc(server.address, tls=host_tls(certs.ca.cert_file)), name="p")
    assert caught.value.code == ErrorCode.TLS_CERT_EXPIRED
    assert "expired" in str(caught.value)


async def test_a_server_cert_for_another_host_fails_clearly(
    serve: ServeFactory, manager: Manager, certs: CertSet
) -> None:
    server = await serve(tls=server_tls(certs.wrong_host_server))
    with pytest.raises(plugwire.TransportError) as caught:
        await manager.register(plugwire.grpc(server.address, tls=host_tls(certs.ca.cert_file)), name="p")
    assert caught.value.code == ErrorCode.TLS_HOSTNAME_MISMATCH


async def test_server_name_override_accepts_a_cert_for_another_name(
    serve: ServeFactory, manager: Manager, certs: CertSet
) -> None:
    server = await serve(tls=server_tls(certs.wrong_host_server))
    tls = host_tls(certs.ca.cert_file, server_name="plugins.example.org")
    await manager.register(plugwire.grpc(server.address, tls=tls), name="p")
    assert (await manager.execute("p", Ask(text="named"))).text == "named"


async def test_a_plaintext_host_against_a_tls_plugin_fails_clearly(
    serve: ServeFactory, manager: Manager, certs: CertSet
) -> None:
    server = await serve(tls=server_tls(certs.server))
    with pytest.raises(plugwire.TransportError) as caught:
        await manager.register(plugwire.grpc(server.address), name="p")
    assert caught.value.code == ErrorCode.TLS_MISMATCH
    assert "requires TLS" in str(caught.value)


async def test_a_tls_host_against_a_plaintext_plugin_fails_clearly(
    serve: ServeFactory, manager: Manager, certs: CertSet
) -> None:
    server = await serve()
    with pytest.raises(plugwire.TransportError) as caught:
        await manager.register(plugwire.grpc(server.address, tls=host_tls(certs.ca.cert_file)), name="p")
    assert caught.value.code == ErrorCode.TLS_MISMATCH
    assert "plaintext" in str(caught.value)


async def test_tls_and_an_api_key_combine(serve: ServeFactory, manager: Manager, certs: CertSet) -> None:
    auth = AuthConfig(method=AuthMethod.API_KEY, api_key="k-123")
    server = await serve(tls=server_tls(certs.server), auth=auth)
    await manager.register(plugwire.grpc(server.address, tls=host_tls(certs.ca.cert_file), auth=auth), name="p")
    assert (await manager.execute("p", Ask(text="ok"))).text == "ok"


def test_unreadable_tls_files_are_config_errors_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(plugwire.ConfigError) as caught:
        TLSConfig(ca_file=str(missing)).load()
    assert str(missing) in str(caught.value)
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("hello")
    with pytest.raises(plugwire.ConfigError, match="not a PEM file"):
        ServerTLSConfig(cert_file=str(not_pem), key_file=str(not_pem)).load()
    with pytest.raises(plugwire.ConfigError, match="go together"):
        TLSConfig(cert_file="a.crt")
    with pytest.raises(plugwire.ConfigError, match="client_ca_file"):
        ServerTLSConfig(cert_file="a", key_file="b", require_client_cert=True)


async def test_a_plugin_configured_for_mtls_must_demand_client_certs(certs: CertSet) -> None:
    mtls = AuthConfig(method=AuthMethod.MTLS)
    with pytest.raises(plugwire.ConfigError, match="require_client_cert"):
        plugwire.sdk.GrpcPluginServer(EchoPlugin(), address="127.0.0.1:0", auth=mtls, tls=server_tls(certs.server))
    server = plugwire.sdk.GrpcPluginServer(
        EchoPlugin(), address="127.0.0.1:0", auth=mtls, tls=server_tls(certs.server, certs.ca.cert_file)
    )
    assert not server.verifies  # the TLS layer checks the certificate; no metadata is needed
