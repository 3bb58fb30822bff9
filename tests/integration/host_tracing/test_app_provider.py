"""Tracing with the application's own OpenTelemetry provider (no `endpoint`): the global one
(in a process of its own: it can be set once per process) or one passed to `enable_tracing`;
the call's spans join the application's trace; `inject_tracing`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import plugwire
from plugwire import ExecutionContext, TracingConfig
from tests.support.plugins.traceparent_plugin import TraceparentPlugin, TraceReq, TraceResp

HOST = Path(__file__).parents[2] / "support" / "plugins" / "global_tracing_host.py"


def test_the_global_provider_of_the_application_gets_the_spans() -> None:
    done = subprocess.run([sys.executable, str(HOST)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    spans = {span["name"]: span for span in report["spans"]}
    request = report["request"]
    assert report["owns_provider"] is False
    # The blocking manager hands each call to its loop thread with the caller's context, so a
    # plain call already joins the application's trace...
    plain = spans["plugwire.execute tp"]
    assert plain["trace_id"] == request["trace_id"]
    assert plain["parent"] == request["span_id"]
    assert plain["service"] == "the-app"  # the application's resource, not TracingConfig's
    # ...and with inject_tracing its execute span is named after the operation.
    checkout = spans["checkout"]
    assert checkout["trace_id"] == request["trace_id"]
    assert checkout["parent"] == request["span_id"]
    attempts = [span for span in report["spans"] if span["name"] == "plugwire.attempt tp"]
    injected_attempt = next(span for span in attempts if span["parent"] == checkout["span_id"])
    assert report["injected"].startswith(f"00-{request['trace_id']}-{injected_attempt['span_id']}-")


class App:
    """An application's tracing set up with the OpenTelemetry SDK, not installed globally."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("app")

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]


@pytest.fixture
def app() -> Any:
    application = App()
    yield application
    application.provider.shutdown()


async def test_an_async_call_inside_an_application_span_is_its_child(app: App) -> None:
    plugin = TraceparentPlugin()
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await manager.enable_tracing(TracingConfig(), tracer_provider=app.provider)
        await manager.register(plugin, name="inproc")
        with app.tracer.start_as_current_span("handler") as handler:
            answer = await manager.execute("inproc", TraceReq())
    (execute,) = app.spans("plugwire.execute inproc")
    (attempt,) = app.spans("plugwire.attempt inproc")
    assert execute.parent is not None
    assert execute.parent.span_id == handler.get_span_context().span_id
    assert attempt.parent is not None
    assert attempt.parent.span_id == execute.context.span_id
    assert attempt.context.trace_id == handler.get_span_context().trace_id
    assert answer.traceparent.startswith(f"00-{attempt.context.trace_id:032x}-{attempt.context.span_id:016x}-")
    assert attempt.attributes is not None
    assert attempt.attributes["plugwire.transport"] == "in-process"
    assert manager.tracing is not None
    assert manager.tracing.export_errors == 0  # not plugwire's exporter: nothing of its own to count


async def test_inject_tracing_names_the_execute_span_and_keeps_a_given_traceparent(app: App) -> None:
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await manager.enable_tracing(TracingConfig(), tracer_provider=app.provider)
        await manager.register(TraceparentPlugin(), name="inproc")
        with app.tracer.start_as_current_span("outer") as outer:
            context = manager.inject_tracing(ExecutionContext(headers={"k": "v"}), "charge-card")
        assert context.headers == {"k": "v"}
        assert context.metadata == {"plugwire.operation": "charge-card"}
        sc = outer.get_span_context()
        assert context.traceparent == f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
        await manager.execute("inproc", TraceReq(), context)  # outside the span: the context carries it
        given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        kept = manager.inject_tracing(ExecutionContext(traceparent=given), "replay")
        assert kept.traceparent == given
        await manager.execute("inproc", TraceReq(), kept)
    (charge,) = app.spans("charge-card")
    assert charge.parent is not None
    assert charge.parent.span_id == sc.span_id
    (replay,) = app.spans("replay")
    assert replay.parent is not None
    assert f"{replay.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{replay.parent.span_id:016x}" == "b7ad6b7169203331"


async def test_inject_tracing_while_tracing_is_off_changes_nothing() -> None:
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        context = ExecutionContext(request_id="r1")
        assert manager.inject_tracing(context, "op") is context
        assert manager.inject_tracing(None, "op") == ExecutionContext()


async def test_a_failing_tracer_never_fails_a_call(app: App) -> None:
    class BrokenTracer:
        def start_span(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("tracer is broken")

    class BrokenProvider:  # stands in for a misbehaving third-party provider (no real one fails so)
        def get_tracer(self, *args: Any, **kwargs: Any) -> BrokenTracer:
            return BrokenTracer()

    records: list[str] = []

    class Logger:
        def debug(self, message: str, *args: Any) -> None: ...
        def info(self, message: str, *args: Any) -> None: ...
        def warning(self, message: str, *args: Any) -> None: ...
        def error(self, message: str, *args: Any) -> None:
            records.append(message)

    async with plugwire.AsyncPluginManager(TraceReq, TraceResp, logger=Logger()) as manager:
        await manager.enable_tracing(TracingConfig(), tracer_provider=BrokenProvider())
        await manager.register(TraceparentPlugin(), name="inproc")
        answers = [await manager.execute("inproc", TraceReq(text=str(n))) for n in range(3)]
    assert [answer.text for answer in answers] == ["0", "1", "2"]
    assert all(answer.traceparent == "" for answer in answers)
    assert len([r for r in records if "tracing: starting the execute span failed" in r]) == 1
