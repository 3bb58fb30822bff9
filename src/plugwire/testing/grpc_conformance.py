"""`check_grpc_plugin(target)`: check a plugin served over gRPC the way a host uses it.

The checks drive the host's own `GrpcTransport` (its channel options, TLS and credentials,
its reading of `Info`, `Execute` and `Health`), and every failure is translated by the host's
mapping of gRPC statuses (`_transports/grpc_status.py`): the code a finding names is the code
a host raises on the same answer. Only two things are added on top: whether a failed call
carried the plugin's own coded error (an answer, which passes) or not (a failure), and the
standard services a host does not call but operators do (`grpc.health.v1`, reflection).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._auth import CredentialProvider, credential_provider
from .._codec import CodecName, TypedCodec, encode
from .._config import AuthConfig, ConnectionConfig, HealthCheckConfig
from .._errors import AuthenticationError, ConfigError, MissingDependencyError, PluginError, RequestSent
from .._models import ExecutionContext, new_request_id
from .._proto import SERVICE_NAME, load, load_reflection
from .._tls import TLSConfig
from .._transports.base import Call
from .._transports.grpc import GrpcTransport
from .._transports.grpc_status import peer_reported
from ._report import ConformanceReport, Finding, Severity, code_label

__all__ = ["check_grpc_plugin", "check_grpc_plugin_async"]

_CONCURRENT = 8


class _Transport(GrpcTransport):
    """The host's transport, remembering whether its last failure was the plugin's own coded error."""

    peer_error = False

    @property
    def channel(self) -> Any:
        """The open grpc.aio channel (for the standard services beside the plugin's)."""
        return self._channel

    def _translate(self, exc: Any) -> PluginError:
        self.peer_error = peer_reported(exc.trailing_metadata())
        return super()._translate(exc)


def check_grpc_plugin(
    target: str,
    *,
    request: Any = None,
    tls: TLSConfig | None = None,
    auth: AuthConfig | CredentialProvider | None = None,
    timeout: float = 5.0,
) -> ConformanceReport:
    """Check the gRPC plugin at `target` (`host:port`, `unix:/path`) and report the results.

    Checks: `Info` answers (and names the plugin); a call with msgpack and one with JSON;
    concurrent calls; the plugin's `Health`; the standard `grpc.health.v1` service;
    server reflection listing `plugwire.v1.Plugin` (when grpcio-reflection is installed here).
    Blocking: runs its own event loop (use `check_grpc_plugin_async` inside one).

    Args:
        target: A grpc target, as in `plugwire.grpc(target)`.
        request: A valid request payload for the calls (default: an empty map).
        tls: Connect with TLS (mTLS when it names a client certificate); None for plaintext.
        auth: The credentials a host would send (an `AuthConfig` or a provider).
        timeout: Seconds for the connection and for each answer.

    Returns:
        A `ConformanceReport` (`address` set); `report.ok` is the verdict.

    Raises:
        PluginError: No check could run: the code a host raises when it cannot connect
            (1301, TLS 1306-1310), its credentials are refused (1100-1199) or its TLS files
            or secrets cannot be read (1000-1099).
    """
    return asyncio.run(check_grpc_plugin_async(target, request=request, tls=tls, auth=auth, timeout=timeout))


async def check_grpc_plugin_async(
    target: str,
    *,
    request: Any = None,
    tls: TLSConfig | None = None,
    auth: AuthConfig | CredentialProvider | None = None,
    timeout: float = 5.0,
) -> ConformanceReport:
    """`check_grpc_plugin` inside a running event loop (same arguments, result and errors)."""
    transport = _Transport(
        target,  # the name errors give the plugin
        target,
        connection=ConnectionConfig(connection_timeout=timeout, request_timeout=timeout),
        health_check=HealthCheckConfig(timeout=timeout),
        tls=tls,
        credentials=credential_provider(auth),
    )
    payload = {} if request is None else request
    findings: list[Finding] = []
    try:
        try:
            info = await transport.start()
        except PluginError as exc:
            if isinstance(exc, AuthenticationError | ConfigError) or exc.request_sent is RequestSent.NO:
                raise  # nothing reached a plugin, our TLS files or credentials are wrong: a setup error
            findings.append(Finding.refused("info", exc, "Info failed, so a host cannot start this plugin"))
            return ConformanceReport((), tuple(findings), target)
        findings.append(Finding("info", True, "must", f"Info answered: {info.name!r} version {info.version}"))
        named = bool(info.name)
        detail = (
            f"calls itself {info.name!r}" if named else "InfoResponse.name is empty: logs and errors cannot name it"
        )
        findings.append(Finding("info-name", named, "should", detail))
        findings.append(await _check_call(transport, payload, "msgpack", timeout))
        findings.append(await _check_call(transport, payload, "json", timeout))
        findings.append(await _check_concurrency(transport, payload, timeout))
        findings.append(await _check_health(transport))
        findings.append(await _check_standard_health(transport, timeout))
        reflection = await _check_reflection(transport, timeout)
        if reflection is not None:
            findings.append(reflection)
    finally:
        await transport.aclose()
    return ConformanceReport((), tuple(findings), target)


async def _call(transport: _Transport, payload: Any, codec: CodecName, timeout: float) -> Any:
    """One call as a host makes it; the answer decoded as a host decodes it."""
    call = Call(
        transport.plugin,
        encode(payload, codec),
        ExecutionContext(request_id=new_request_id()),
        codec=codec,
        timeout=timeout,
    )
    transport.peer_error = False
    answer = await transport.call(call)
    return TypedCodec(Any, codec, role="response").decode(answer)


async def _check_call(transport: _Transport, payload: Any, codec: CodecName, timeout: float) -> Finding:
    name = "call" if codec == "msgpack" else "call-json"
    severity: Severity = "must" if codec == "msgpack" else "should"
    try:
        answer = await _call(transport, payload, codec, timeout)
    except PluginError as exc:
        if transport.peer_error:  # the plugin's own coded error is an answer
            return Finding(name, True, severity, f"answered with error {code_label(exc.code)}: {exc.message}")
        return Finding.refused(name, exc, f"a {codec} call failed", severity)
    return Finding(name, True, severity, f"answered a {codec} call: {answer!r:.80}")


async def _check_concurrency(transport: _Transport, payload: Any, timeout: float) -> Finding:
    async def one() -> PluginError | None:
        try:
            await _call(transport, payload, "msgpack", timeout)
        except PluginError as exc:
            return None if transport.peer_error else exc
        return None

    errors = [e for e in await asyncio.gather(*(one() for _ in range(_CONCURRENT))) if e is not None]
    if errors:
        return Finding.refused("concurrent-calls", errors[0], f"{len(errors)} of {_CONCURRENT} concurrent calls failed")
    return Finding("concurrent-calls", True, "must", f"{_CONCURRENT} concurrent calls answered")


async def _check_health(transport: _Transport) -> Finding:
    try:
        status = await transport.health()
    except PluginError as exc:
        return Finding.refused("health", exc, "Health failed, so a host counts the plugin unhealthy")
    return Finding("health", True, "must", f"reports {status.status.value!r}")


async def _check_standard_health(transport: _Transport, timeout: float) -> Finding:
    """grpc.health.v1 for the server ("") and for the plugin service: what probes ask."""
    mods = load()
    stub = mods.health_pb2_grpc.HealthStub(transport.channel)
    answers: dict[str, str] = {}
    for service in ("", SERVICE_NAME):
        try:
            reply = await stub.Check(mods.health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except mods.aio.AioRpcError as exc:
            answers[service or "(server)"] = exc.code().name
        else:
            answers[service or "(server)"] = mods.health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    ok = all(value == "SERVING" for value in answers.values())
    words = ", ".join(f"{service}: {status}" for service, status in answers.items())
    detail = f"grpc.health.v1 answers {words}" + ("" if ok else " (probes such as Kubernetes' expect SERVING)")
    return Finding("grpc-health", ok, "should", detail)


async def _check_reflection(transport: _Transport, timeout: float) -> Finding | None:
    """Server reflection lists the plugin service (None: grpcio-reflection is not installed here)."""
    try:
        _, messages, stubs = load_reflection()
    except MissingDependencyError:
        return None
    stub = stubs.ServerReflectionStub(transport.channel)
    mods = load()
    try:
        call = stub.ServerReflectionInfo(iter([messages.ServerReflectionRequest(list_services="")]), timeout=timeout)
        services = [s.name async for reply in call for s in reply.list_services_response.service]
    except mods.aio.AioRpcError as exc:
        return Finding(
            "reflection", False, "should", f"no server reflection ({exc.code().name}): grpcurl needs the .proto"
        )
    listed = SERVICE_NAME in services
    detail = f"lists {', '.join(sorted(services))}" if listed else f"does not list {SERVICE_NAME}: {services}"
    return Finding("reflection", listed, "should", detail)
