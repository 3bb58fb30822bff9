"""`MockTransport`: a transport driven by a function, for tests of code that uses plugwire."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from .._config import PluginConfig
from .._models import HealthStatus, PluginInfo, Status, Transport
from .base import BaseTransport, Call

__all__ = ["MockTransport"]

MockHandler = Callable[[Call], Any | Awaitable[Any]]


class MockTransport(BaseTransport):
    """Answers every call with `handler(call)` (sync or async), recording the calls.

    It is also a plugin source, so `manager.register(MockTransport(handler), name="x")` works.
    The handler receives the encoded payload and returns encoded bytes, exactly like a real
    plugin on the other side of a wire; raise a `PluginError` to simulate a failure.

    Args:
        handler: The fake plugin.
        info: What the fake plugin says about itself.
        health: What its health checks report.
    """

    kind = Transport.IN_PROCESS

    def __init__(
        self,
        handler: MockHandler,
        *,
        info: PluginInfo | None = None,
        health: HealthStatus | None = None,
    ) -> None:
        self.handler = handler
        self.plugin_info = info or PluginInfo(name="mock")
        self.health_status = health or HealthStatus(status=Status.HEALTHY, message="mock")
        self.calls: list[Call] = []
        self.started = False
        self.closed = False

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        return msgspec.structs.replace(base, name=name, transport=Transport.IN_PROCESS)

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        return self

    async def start(self) -> PluginInfo:
        self.started = True
        return self.plugin_info

    async def call(self, call: Call) -> Any:
        self.calls.append(call)
        result = self.handler(call)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def health(self) -> HealthStatus:
        return self.health_status

    async def aclose(self) -> None:
        self.closed = True
