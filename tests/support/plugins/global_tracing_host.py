"""A host application with its own OpenTelemetry setup (a global SDK `TracerProvider`),
run in a process of its own by the tests, since the global provider can be set only once.

It calls a subprocess plugin through a blocking `PluginManager` with tracing on and no
endpoint (plugwire then uses the global provider), inside an application span: once plainly,
once with `inject_tracing`; then prints what its in-memory exporter got, as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import plugwire
from plugwire import TracingConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from traceparent_plugin import TraceReq, TraceResp


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "the-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    app = trace.get_tracer("the-app")
    plugin = str(Path(__file__).resolve().parent / "traceparent_plugin.py")
    with plugwire.PluginManager(TraceReq, TraceResp) as manager:
        manager.enable_tracing(TracingConfig(service_name="ignored: the app's resource decides"))
        manager.register(plugwire.subprocess(sys.executable, plugin), name="tp")
        with app.start_as_current_span("handle-request") as request_span:
            plain = manager.execute("tp", TraceReq(text="plain"))
            injected = manager.execute("tp", TraceReq(text="injected"), manager.inject_tracing(None, "checkout"))
        tracing = manager.tracing
        assert tracing is not None
        owns = tracing.owns_provider
    spans = [
        {
            "name": span.name,
            "trace_id": f"{span.context.trace_id:032x}",
            "span_id": f"{span.context.span_id:016x}",
            "parent": f"{span.parent.span_id:016x}" if span.parent else "",
            "service": span.resource.attributes.get("service.name"),
        }
        for span in exporter.get_finished_spans()
    ]
    request = request_span.get_span_context()
    print(
        json.dumps(
            {
                "spans": spans,
                "request": {"trace_id": f"{request.trace_id:032x}", "span_id": f"{request.span_id:016x}"},
                "plain": plain.traceparent,
                "injected": injected.traceparent,
                "owns_provider": owns,
            }
        )
    )


if __name__ == "__main__":
    main()
