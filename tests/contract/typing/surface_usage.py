"""The public surface as a user imports it: the top level, the namespaces, one close verb each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

import plugwire
from plugwire.config import RestartPolicy, SubprocessOptions
from plugwire.errors import ErrorCode, PluginError, RequestSent
from plugwire.policies import BreakerState, Call, Policy
from plugwire.sdk import GrpcPluginServer, TypedCodec
from plugwire.security import AuditLog, TLSConfig
from plugwire.testing import Clock, FakeClock


class Tagging:
    """A user policy, typed with the names of `plugwire.policies` alone."""

    async def __call__(self, call: Call, call_next: Callable[[Call], Awaitable[Any]]) -> Any:
        return await call_next(msgspec.structs.replace(call, timeout=1.0))


def user_policies() -> list[Policy]:
    return [Tagging()]


async def closes(server: GrpcPluginServer) -> None:
    manager: plugwire.AsyncPluginManager[str, str] = plugwire.AsyncPluginManager(str, str)
    await manager.aclose()
    await manager.shutdown(1.0)  # the README's verb: the same method, with a timeout
    await server.aclose(0)
    blocking: plugwire.PluginManager[str, str] = plugwire.PluginManager(str, str)
    blocking.close()
    blocking.shutdown(1.0)


def namespaces(log: AuditLog) -> None:
    assert plugwire.errors.PluginError is PluginError
    assert plugwire.PluginError is PluginError  # the root stays top-level too
    code: int = ErrorCode.PLUGIN_NOT_FOUND
    assert code == 1201
    sent: RequestSent = RequestSent.MAYBE
    assert sent
    options = SubprocessOptions(restart=RestartPolicy(max_restarts=3))
    assert options.restart.max_restarts == 3
    clock: Clock = FakeClock()
    assert clock.monotonic() >= 0
    state: BreakerState = BreakerState.OPEN
    assert state
    assert issubclass(Policy, object)
    assert TLSConfig(ca_file="ca.pem").ca_file == "ca.pem"
    codec: TypedCodec[str] = TypedCodec(str)
    assert codec.decode(codec.encode("x")) == "x"
    log.close()
    source = plugwire.subprocess("./x")  # the table's spelling: shadows no standard-library module
    assert isinstance(source, plugwire.PluginSource)
