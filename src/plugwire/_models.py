"""The values that cross the plugin boundary, the plugin interface, and the public enums."""

from __future__ import annotations

import abc
import enum
import itertools
import os
import time
from typing import Generic

import msgspec

from ._types import ReqT, RespT

__all__ = [
    "AuthMethod",
    "ExecutionContext",
    "HealthStatus",
    "Plugin",
    "PluginInfo",
    "SecurityPolicy",
    "Status",
    "Transport",
    "new_request_id",
]


class Status(enum.StrEnum):
    """A plugin's health, from best to worst."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    OFFLINE = "offline"


class Transport(enum.StrEnum):
    """How the host reaches a plugin (the strings are what config files use)."""

    EXECUTABLE = "executable"
    GRPC = "grpc"
    GRPC_TLS = "grpc-tls"
    IN_PROCESS = "in-process"
    GO_PLUGIN = "go-plugin"


class AuthMethod(enum.StrEnum):
    """How the host proves itself to a plugin."""

    NONE = "none"
    API_KEY = "api-key"
    BEARER = "bearer"
    BASIC = "basic"
    MTLS = "mtls"
    CUSTOM = "custom"


class SecurityPolicy(enum.StrEnum):
    """What the security system does with a plugin that fails its checks."""

    DISABLED = "disabled"
    PERMISSIVE = "permissive"
    STRICT = "strict"
    AUDIT = "audit"


class PluginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a plugin says about itself."""

    name: str
    version: str = "0.0.0"
    description: str = ""
    author: str = ""
    capabilities: tuple[str, ...] = ()
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class HealthStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The result of one health check.

    Attributes:
        status: The plugin's health.
        message: A human explanation.
        last_check: Wall-clock time of the check (seconds since the epoch).
        response_time: How long the check took, in seconds.
        metadata: Extra facts the plugin or the monitor adds.
    """

    status: Status
    message: str = ""
    last_check: float = msgspec.field(default_factory=time.time)
    response_time: float = 0.0
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class _RequestIds:
    """32 hex digits: 64 random bits drawn once per process, then a counter.

    As unique as a uuid4 for our purpose, at a tenth of the cost (no system call per id),
    which matters because every call gets one. A forked child draws new random bits. The
    two halves live in one integer, random * 2**64 + count: its 16 big-endian bytes in hex
    are the id (`to_bytes(16, "big").hex()`, a third cheaper than `hex()` and a slice).
    """

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.counter = itertools.count((int.from_bytes(os.urandom(8), "big") << 64) | 1)

    def next(self) -> str:
        return next(self.counter).to_bytes(16, "big").hex()


_request_ids = _RequestIds()
if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere there is no fork to worry about
    os.register_at_fork(after_in_child=_request_ids.reseed)


def new_request_id() -> str:
    """Return a fresh, unique request id (32 hex digits)."""
    return _request_ids.next()


class ExecutionContext(msgspec.Struct, frozen=True, kw_only=True):
    """Per-call options: the README's `ExecutionContext`.

    Attributes:
        request_id: Identifies the call in logs, traces and the plugin; generated if empty.
        timeout: Seconds each attempt may take; `None` uses the plugin's `request_timeout`.
        total_timeout: Seconds the whole call may take, counted from when it enters the
            policies: every attempt, retry backoff and rate-limit wait included. `None`: no
            overall limit beyond the attempts' own.
        max_retries: Overrides the plugin's `retry.max_retries` for this call.
        idempotent: The call may be repeated even when its outcome is unknown.
        headers: Values passed to the plugin with the call.
        metadata: Values kept on the host side (logs, traces); also sent to the plugin.
        traceparent: The W3C trace context of the call (`00-<trace id>-<span id>-<flags>`):
            set by the host's tracing on each attempt (or by you, to continue a trace), sent
            to the plugin, and seen there by its `execute`; "" when the call is not traced.
    """

    request_id: str = ""
    timeout: float | None = None
    total_timeout: float | None = None
    max_retries: int | None = None
    idempotent: bool = False
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    traceparent: str = ""

    def with_request_id(self) -> ExecutionContext:
        """Return this context with a generated request id if it has none."""
        if self.request_id:
            return self
        # `new_request_id()` inlined: this runs on every call.
        return msgspec.structs.replace(self, request_id=next(_request_ids.counter).to_bytes(16, "big").hex())


class Plugin(abc.ABC, Generic[ReqT, RespT]):
    """The interface a plugin implements, in any transport.

    Subclass it with your request and response types, `Plugin[MyRequest, MyResponse]`, and
    implement `info()` and `execute()`. `health()` reports healthy and `close()` does nothing
    unless overridden. `plugwire.serve()` also accepts plain `def` methods.
    """

    @abc.abstractmethod
    def info(self) -> PluginInfo:
        """Describe the plugin."""

    @abc.abstractmethod
    async def execute(self, ctx: ExecutionContext, request: ReqT) -> RespT:
        """Handle one request."""

    async def health(self) -> HealthStatus:
        """Report the plugin's health; healthy unless overridden."""
        return HealthStatus(status=Status.HEALTHY, message="ok")

    async def close(self) -> None:
        """Release the plugin's resources; called once when the plugin stops."""
