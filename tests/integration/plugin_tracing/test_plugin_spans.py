"""Plugin-side tracing (issue 17, item 4): a real subprocess plugin started with
``PLUGWIRE_TRACING=1`` exports its server span to a real OTLP/HTTP receiver, as a child of the
span the caller started, over stdio and over gRPC."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import plugwire
from plugwire import ExecutionContext
from plugwire._proto import load
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.plugins.traced_plugin import Req, Resp
from tests.support.procguard import PLUGINS, manager_for, plugin_env, python_plugin

pytestmark = pytest.mark.usefixtures("no_leaks")

SCRIPT = PLUGINS / "traced_plugin.py"
SPAN_NAME = "plugwire.plugin.execute"
SERVER = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER


@dataclass(frozen=True)
class HostSpan:
    trace_id: str
    span_id: str
    traceparent: str


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


@pytest.fixture
def host_spans() -> Iterator[TracerProvider]:
    provider = TracerProvider()  # the test's own, passed explicitly: the global one is left alone
    yield provider
    provider.shutdown()


def start_host_span(provider: TracerProvider, *, sampled: bool = True) -> HostSpan:
    """A span of the test's own provider, and its W3C traceparent (as a host would send it)."""
    span = provider.get_tracer("test-host").start_span("host-call")
    span.end()
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    traceparent = carrier["traceparent"]
    if not sampled:
        traceparent = traceparent[:-2] + "00"
    context = span.get_span_context()
    return HostSpan(format(context.trace_id, "032x"), format(context.span_id, "016x"), traceparent)


def tracing_env(receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    """The env a tracing host gives its plugins (the contract of `_sdk/tracing.py`)."""
    return {
        "PLUGWIRE_TRACING": "1",
        "OTEL_SERVICE_NAME": "traced",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.endpoint}/v1/traces",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing leaves before the plugin stops: its stop flushes
        **extra,
    }


def plugin_spans(receiver: OTLPReceiver) -> list[ReceivedSpan]:
    return [span for span in receiver.spans if span.span.name == SPAN_NAME]


async def call_stdio(
    env: dict[str, str], *contexts: ExecutionContext, kind: str = "async", op: str = "echo"
) -> list[Resp]:
    """Calls a fresh subprocess plugin once per context, then stops it (which flushes its spans)."""
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("traced_plugin.py", kind, **env), name="traced")
        return [await manager.execute("traced", Req(op=op), ctx) for ctx in contexts]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_the_plugins_server_span_is_a_child_of_the_callers_span(
    receiver: OTLPReceiver, host_spans: TracerProvider, kind: str
) -> None:
    host = start_host_span(host_spans)
    [answer] = await call_stdio(tracing_env(receiver), ExecutionContext(traceparent=host.traceparent), kind=kind)
    assert answer.traceparent == host.traceparent
    [span] = receiver.wait_for_spans(bool)
    assert span.span.name == SPAN_NAME
    assert span.span.kind == SERVER
    assert span.trace_id == host.trace_id
    assert span.parent_span_id == host.span_id
    assert span.resource["service.name"] == "traced"
    assert span.attributes["plugwire.plugin"] == "traced"
    assert span.attributes["plugwire.transport"] == "stdio"
    assert span.attributes["plugwire.request_id"]
    # The plugin saw its own server span as the current one.
    assert (answer.trace_id, answer.span_id) == (host.trace_id, span.span_id)


async def test_the_plugins_own_spans_nest_under_its_server_span(
    receiver: OTLPReceiver, host_spans: TracerProvider
) -> None:
    host = start_host_span(host_spans)
    [answer] = await call_stdio(tracing_env(receiver), ExecutionContext(traceparent=host.traceparent), op="child")
    spans = receiver.wait_for_spans(lambda spans: len(spans) >= 2)
    by_name = {span.span.name: span for span in spans}
    server, child = by_name[SPAN_NAME], by_name["plugin-work"]
    assert child.span_id == answer.child_span_id
    assert child.parent_span_id == server.span_id
    assert child.trace_id == server.trace_id == host.trace_id


async def test_without_otel_service_name_the_resource_is_named_after_the_plugin(
    receiver: OTLPReceiver, host_spans: TracerProvider
) -> None:
    env = tracing_env(receiver)
    del env["OTEL_SERVICE_NAME"]
    host = start_host_span(host_spans)
    await call_stdio(env, ExecutionContext(traceparent=host.traceparent))
    [span] = receiver.wait_for_spans(bool)
    assert span.resource["service.name"] == "traced"


async def test_a_failed_call_ends_its_span_with_an_error_status_and_the_code(
    receiver: OTLPReceiver, host_spans: TracerProvider
) -> None:
    host = start_host_span(host_spans)
    with pytest.raises(plugwire.errors.RequestValidationError):
        await call_stdio(tracing_env(receiver), ExecutionContext(traceparent=host.traceparent), op="fail")
    [span] = receiver.wait_for_spans(bool)
    assert span.span.status.code == 2  # STATUS_CODE_ERROR
    assert "asked to fail" in span.span.status.message
    assert span.attributes["plugwire.error_code"] == plugwire.errors.RequestValidationError("x").code


@pytest.mark.parametrize(
    "traceparent",
    [
        "",
        "00-abc",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has 4 fields
    ],
)
async def test_a_call_with_an_empty_or_malformed_traceparent_succeeds_untraced(
    receiver: OTLPReceiver, traceparent: str
) -> None:
    [answer] = await call_stdio(tracing_env(receiver), ExecutionContext(traceparent=traceparent))
    assert answer.traceparent == traceparent  # the plugin still sees what was sent
    assert (answer.trace_id, answer.span_id) == ("", "")
    assert receiver.spans == []  # the plugin has stopped and flushed: nothing was recorded


async def test_an_unsampled_traceparent_records_no_plugin_span(
    receiver: OTLPReceiver, host_spans: TracerProvider
) -> None:
    host = start_host_span(host_spans, sampled=False)
    [answer] = await call_stdio(tracing_env(receiver), ExecutionContext(traceparent=host.traceparent))
    # No span was started: the caller's span context is current (log records carry its ids) ...
    assert (answer.trace_id, answer.span_id) == (host.trace_id, host.span_id)
    assert receiver.spans == []  # ... but nothing is exported


async def test_without_plugwire_tracing_a_plugin_exports_nothing(
    receiver: OTLPReceiver, host_spans: TracerProvider
) -> None:
    env = tracing_env(receiver)
    del env["PLUGWIRE_TRACING"]
    host = start_host_span(host_spans)
    [answer] = await call_stdio(env, ExecutionContext(traceparent=host.traceparent))
    assert answer.traceparent == host.traceparent
    assert (answer.trace_id, answer.span_id) == ("", "")
    assert receiver.spans == []


async def test_stopping_the_plugin_flushes_every_span_of_its_calls(
    receiver: OTLPReceiver, host_spans: TracerProvider
) -> None:
    hosts = [start_host_span(host_spans) for _ in range(5)]
    # The batch processor's delay is ten minutes (tracing_env): only the stop's flush sends them.
    await call_stdio(tracing_env(receiver), *(ExecutionContext(traceparent=h.traceparent) for h in hosts))
    assert sorted(span.parent_span_id for span in plugin_spans(receiver)) == sorted(h.span_id for h in hosts)


async def test_a_dead_collector_never_fails_a_call_nor_holds_the_plugins_stop(host_spans: TracerProvider) -> None:
    with OTLPReceiver() as gone:
        endpoint = f"{gone.endpoint}/v1/traces"  # closed on leaving: nothing listens there any more
    env = {"PLUGWIRE_TRACING": "1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    host = start_host_span(host_spans)
    [answer] = await asyncio.wait_for(call_stdio(env, ExecutionContext(traceparent=host.traceparent)), 60)
    assert answer.trace_id == host.trace_id


async def test_a_plugin_that_configured_its_own_provider_keeps_it(
    receiver: OTLPReceiver, host_spans: TracerProvider
) -> None:
    host = start_host_span(host_spans)
    await call_stdio(tracing_env(receiver), ExecutionContext(traceparent=host.traceparent), kind="user-provider")
    [span] = receiver.wait_for_spans(bool)
    assert span.resource["service.name"] == "user-configured"  # not plugwire's resource
    assert span.parent_span_id == host.span_id


async def test_without_opentelemetry_in_the_plugin_the_call_succeeds_and_exports_nothing(
    receiver: OTLPReceiver, host_spans: TracerProvider
) -> None:
    host = start_host_span(host_spans)
    env = tracing_env(receiver, PLUGWIRE_TEST_HIDE_OTEL="1")
    [answer] = await call_stdio(env, ExecutionContext(traceparent=host.traceparent))
    # No span of its own: log records carry the traceparent's ids.
    assert (answer.trace_id, answer.span_id) == (host.trace_id, host.span_id)
    assert receiver.spans == []


# ------------------------------------------------------------------------------ gRPC


@dataclass
class GrpcPlugin:
    proc: asyncio.subprocess.Process
    address: str


@pytest.fixture
async def grpc_plugin(receiver: OTLPReceiver) -> AsyncIterator[GrpcPlugin]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "async",
        "grpc",
        "127.0.0.1:0",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **plugin_env(), **tracing_env(receiver)},
    )
    try:
        assert proc.stderr is not None
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            if not line:
                raise AssertionError("the gRPC plugin exited before listening")
            if "over gRPC on" in line:
                break
        yield GrpcPlugin(proc, line.rsplit(" on ", 1)[1].strip())
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def stop(plugin: GrpcPlugin) -> None:
    plugin.proc.terminate()  # a graceful stop, which flushes the spans
    assert await asyncio.wait_for(plugin.proc.wait(), 20) == 0


async def test_a_grpc_plugins_server_span_is_a_child_of_the_callers_span(
    receiver: OTLPReceiver, host_spans: TracerProvider, grpc_plugin: GrpcPlugin
) -> None:
    host = start_host_span(host_spans)
    async with manager_for(Req, Resp) as manager:
        await manager.register(plugwire.grpc(grpc_plugin.address), name="traced")
        answer = await manager.execute("traced", Req(), ExecutionContext(traceparent=host.traceparent))
    assert answer.traceparent == host.traceparent
    await stop(grpc_plugin)
    [span] = receiver.wait_for_spans(bool)
    assert (span.span.name, span.span.kind) == (SPAN_NAME, SERVER)
    assert span.trace_id == host.trace_id
    assert span.parent_span_id == host.span_id
    assert span.resource["service.name"] == "traced"
    assert span.attributes["plugwire.transport"] == "grpc"


async def test_a_grpc_plugin_prefers_the_traceparent_call_metadata_to_the_requests_map(
    receiver: OTLPReceiver, host_spans: TracerProvider, grpc_plugin: GrpcPlugin
) -> None:
    import grpc

    in_metadata, in_map = start_host_span(host_spans), start_host_span(host_spans)
    mods = load()
    request = mods.pb2.ExecuteRequest(
        request_id="r-1",
        payload=msgspec.msgpack.encode(Req()),
        content_type="application/msgpack",
        metadata={"traceparent": in_map.traceparent},
    )
    async with grpc.aio.insecure_channel(grpc_plugin.address) as channel:
        stub: Any = mods.pb2_grpc.PluginStub(channel)
        reply = await stub.Execute(request, metadata=(("traceparent", in_metadata.traceparent),), timeout=20)
    assert msgspec.msgpack.decode(reply.payload, type=Resp).traceparent == in_metadata.traceparent
    await stop(grpc_plugin)
    [span] = receiver.wait_for_spans(bool)
    assert span.parent_span_id == in_metadata.span_id
    assert span.attributes["plugwire.request_id"] == "r-1"
