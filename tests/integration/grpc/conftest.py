"""Fixtures for the gRPC tests: certificates, in-process plugin servers, a manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import plugwire
from plugwire.sdk import GrpcPluginServer
from tests.support.grpc_certs import CertSet, make_cert_set
from tests.support.grpc_support import Answer, Ask, EchoPlugin, ServeFactory


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_cert_set(tmp_path_factory.mktemp("certs"))


@pytest.fixture
async def serve() -> AsyncIterator[ServeFactory]:
    """Start in-process plugin servers; every one is stopped at the end of the test."""
    servers: list[GrpcPluginServer] = []

    async def start(plugin: Any = None, address: str = "127.0.0.1:0", **options: Any) -> GrpcPluginServer:
        server = GrpcPluginServer(plugin if plugin is not None else EchoPlugin(), address=address, **options)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.aclose(0)


@pytest.fixture
async def manager() -> AsyncIterator[plugwire.AsyncPluginManager[Ask, Answer]]:
    async with plugwire.AsyncPluginManager(Ask, Answer) as mgr:
        yield mgr
