"""Host-side tracing over a real gRPC plugin on loopback: the attempt span's traceparent
reaches the plugin's execute (request metadata) and the wire as gRPC call metadata, next to
the credentials' metadata and the call's own headers."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

import plugwire
from plugwire import ExecutionContext, TracingConfig
from plugwire.sdk import GrpcPluginServer
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.plugins.traceparent_plugin import TraceparentPlugin, TraceReq, TraceResp

SERVICE = "grpc-host-under-test"


class CallMetadata:
    """The plugin side's credential check, used here to see each call's gRPC metadata."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    def __call__(self, metadata: Mapping[str, str]) -> None:
        self.calls.append(dict(metadata))


def ids(traceparent: str) -> str:
    return traceparent.rsplit("-", 1)[0]


@pytest.mark.parametrize("credentials", [False, True])
async def test_grpc_attempts_carry_the_attempt_span_in_request_and_call_metadata(credentials: bool) -> None:
    seen = CallMetadata()
    plugin = TraceparentPlugin()
    with OTLPReceiver() as receiver:
        async with GrpcPluginServer(plugin, address="127.0.0.1:0", auth=seen) as server:
            auth = (lambda: {"x-api-key": "k"}) if credentials else None
            async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
                await manager.enable_tracing(TracingConfig(service_name=SERVICE, endpoint=receiver.endpoint))
                await manager.register(plugwire.grpc(server.address, auth=auth), name="g")
                context = ExecutionContext(headers={"x-tenant": "blue"})
                answer = await manager.execute("g", TraceReq(text="over grpc"), context)
                untouched = context.traceparent
    spans = [span for span in receiver.spans if span.resource.get("service.name") == SERVICE]
    (execute,) = [span for span in spans if span.span.name == "plugwire.execute g"]
    (attempt,) = [span for span in spans if span.span.name == "plugwire.attempt g"]
    assert attempt.parent_span_id == execute.span_id
    assert attempt.attributes["plugwire.transport"] == "grpc"
    expected = f"00-{attempt.trace_id}-{attempt.span_id}"
    assert ids(answer.traceparent) == expected  # the plugin's execute, from the request's metadata map
    assert untouched == ""  # the caller's context is not changed
    (call,) = [metadata for metadata in seen.calls if "traceparent" in metadata]
    assert call["traceparent"] == answer.traceparent  # the gRPC call metadata (W3C, for interceptors)
    assert (call.get("x-api-key") == "k") is credentials
    assert plugin.seen == [answer.traceparent]


async def test_grpc_calls_without_tracing_send_no_traceparent() -> None:
    seen = CallMetadata()
    async with (
        GrpcPluginServer(TraceparentPlugin(), address="127.0.0.1:0", auth=seen) as server,
        plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager,
    ):
        await manager.register(plugwire.grpc(server.address), name="g")
        answer = await manager.execute("g", TraceReq())
    assert answer.traceparent == ""
    assert seen.calls
    assert not any("traceparent" in metadata for metadata in seen.calls)
