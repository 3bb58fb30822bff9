"""Shared pieces of the gRPC tests: request/response types, the echo plugin, helpers.

Kept out of conftest.py so test modules can import them by a name no other test folder uses.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

import plugwire
from plugwire import ExecutionContext, Plugin, PluginInfo
from plugwire._errors import error_from_code
from plugwire.sdk import GrpcPluginServer


class Ask(msgspec.Struct, kw_only=True):
    """What the test plugins take."""

    text: str = ""
    mode: str = ""  # "", "hang", "invalid", "unavailable", "boom", "wrong-shape", "big"
    size: int = 0


class Answer(msgspec.Struct, kw_only=True):
    """What the test plugins return."""

    text: str
    server: str = ""
    request_id: str = ""
    timeout: float | None = None
    headers: dict[str, str] = {}


class EchoPlugin(Plugin[Ask, Answer]):
    """Echoes, identifies itself, and misbehaves on request."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.closed = False
        self.calls = 0

    def info(self) -> PluginInfo:
        return PluginInfo(name=self.name, version="1.2.3", capabilities=("echo",), metadata={"kind": "test"})

    async def execute(self, ctx: ExecutionContext, request: Ask) -> Any:
        self.calls += 1
        if request.mode == "hang":
            self.started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if request.mode == "invalid":
            raise plugwire.errors.RequestValidationError("text must not be empty")
        if request.mode == "unavailable":
            raise plugwire.TransportError("database is down")
        if request.mode == "coded":
            raise error_from_code(request.size, f"coded failure {request.size}")
        if request.mode == "boom":
            raise RuntimeError("boom")
        if request.mode == "wrong-shape":
            return {"unexpected": 1}
        text = "x" * request.size if request.mode == "big" else request.text
        return Answer(
            text=text, server=self.name, request_id=ctx.request_id, timeout=ctx.timeout, headers=dict(ctx.headers)
        )

    async def close(self) -> None:
        self.closed = True


ServeFactory = Callable[..., Awaitable[GrpcPluginServer]]


def short_socket_path(tmp_path: Path, name: str = "plugin.sock") -> str:
    """A unix socket path short enough for sun_path (108 bytes)."""
    path = tmp_path / name
    if len(str(path)) < 100:
        return str(path)
    return str(Path(tempfile.mkdtemp(prefix="pw")) / name)
