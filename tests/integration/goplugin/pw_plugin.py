"""A plugwire plugin (typed `Plugin[Req, Resp]`) served to a go-plugin host with
`plugwire.serve(plugin, transport="go-plugin", handshake=...)`: it greets `name`, and refuses
an empty name with a coded error (`RequestValidationError`, 1205). Cookie
PLUGWIRE_GO_HOST=pwhost, app protocol version 1 (pwhost's defaults).
"""

from __future__ import annotations

import msgspec

import plugwire
from plugwire import ExecutionContext, HealthStatus, Plugin, PluginInfo, Status
from plugwire._goplugin import HandshakeConfig
from plugwire.errors import RequestValidationError


class Greeting(msgspec.Struct):
    name: str


class Reply(msgspec.Struct):
    text: str
    request_id: str


class Greeter(Plugin[Greeting, Reply]):
    def info(self) -> PluginInfo:
        return PluginInfo(name="greeter", version="1.2.3", capabilities=["greet"])

    async def execute(self, ctx: ExecutionContext, request: Greeting) -> Reply:
        if not request.name:
            raise RequestValidationError("name must not be empty")
        return Reply(text=f"hello, {request.name}", request_id=ctx.request_id)

    async def health(self) -> HealthStatus:
        return HealthStatus(status=Status.DEGRADED, message="greeting slowly")


if __name__ == "__main__":
    plugwire.serve(
        Greeter(),
        transport="go-plugin",
        handshake=HandshakeConfig(protocol_version=1, magic_cookie_key="PLUGWIRE_GO_HOST", magic_cookie_value="pwhost"),
    )
