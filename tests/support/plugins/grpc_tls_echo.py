"""A gRPC plugin served over mutual TLS: `python grpc_tls_echo.py ADDRESS CERT KEY CLIENT_CA`.

Echoes the request's text; hosts must present a client certificate signed by CLIENT_CA.
"""

from __future__ import annotations

import sys

import msgspec

import plugwire
from plugwire.security import ServerTLSConfig


class Ask(msgspec.Struct, kw_only=True):
    text: str = ""


class Answer(msgspec.Struct, kw_only=True):
    text: str


class TlsEcho(plugwire.Plugin[Ask, Answer]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="tls-echo", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Ask) -> Answer:
        return Answer(text=request.text)


if __name__ == "__main__":
    address, cert, key, client_ca = sys.argv[1:5]
    tls = ServerTLSConfig(cert_file=cert, key_file=key, client_ca_file=client_ca, require_client_cert=True)
    plugwire.sdk.serve_grpc(TlsEcho(), address=address, tls=tls)
