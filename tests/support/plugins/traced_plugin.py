"""A test plugin for plugin-side tracing and logging:
`python traced_plugin.py [async|sync|user-provider] [grpc ADDRESS]`.

- `async` (default): `async def execute`; `sync`: plain `def execute` (the adapter's way);
  `user-provider`: the plugin configures its own global OpenTelemetry `TracerProvider`
  (resource `service.name=user-configured`, exporting to the same OTLP endpoint) before serving.
- `grpc ADDRESS`: served over gRPC on ADDRESS instead of stdio.
- PLUGWIRE_TEST_HIDE_OTEL=1: OpenTelemetry cannot be imported in this process (as in a plugin
  installed without the `otel` extra).

Ops (`Req.op`): "echo" answers the traceparent and trace ids it sees; "log" also logs one
line through each of stdlib `logging`, structlog and loguru; "child" also starts a span of
its own (nested under the call's); "fail" raises.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
from typing import Any

import msgspec


class _NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == "opentelemetry" or fullname.startswith("opentelemetry."):
            raise ImportError(f"{fullname} is hidden in this test plugin")
        return None


if os.environ.get("PLUGWIRE_TEST_HIDE_OTEL") == "1":
    sys.meta_path.insert(0, _NoOpenTelemetry())

import structlog  # noqa: E402 (after the import blocker above)
from loguru import logger as loguru_logger  # noqa: E402

import plugwire  # noqa: E402
from plugwire.sdk import add_trace_ids, current_trace_ids, loguru_trace_ids  # noqa: E402


class Req(msgspec.Struct):
    op: str = "echo"


class Resp(msgspec.Struct):
    traceparent: str
    trace_id: str = ""
    span_id: str = ""
    child_span_id: str = ""


def _configure_logging() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            add_trace_ids,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    loguru_logger.remove()
    loguru_logger.configure(patcher=loguru_trace_ids)  # type: ignore[arg-type]
    loguru_logger.add(sys.stderr, format="{message} trace_id={extra[trace_id]} span_id={extra[span_id]}")


def _run(ctx: plugwire.ExecutionContext, request: Req) -> Resp:
    child = ""
    if request.op == "fail":
        raise plugwire.errors.RequestValidationError("asked to fail")
    if request.op == "child":
        from opentelemetry import trace

        with trace.get_tracer("traced-plugin").start_as_current_span("plugin-work") as span:
            child = format(span.get_span_context().span_id, "016x")
    if request.op == "log":
        logging.getLogger("traced").info("stdlib says hi")
        structlog.get_logger().info("structlog says hi")
        loguru_logger.info("loguru says hi")
    ids = current_trace_ids() or ("", "")
    return Resp(traceparent=ctx.traceparent, trace_id=ids[0], span_id=ids[1], child_span_id=child)


class AsyncTraced(plugwire.Plugin[Req, Resp]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="traced", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
        return _run(ctx, request)


class SyncTraced(plugwire.Plugin[Req, Resp]):
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="traced", version="1.0.0")

    def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:  # type: ignore[override]
        return _run(ctx, request)


def _user_provider() -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "user-configured"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def main(argv: list[str]) -> None:
    kind = argv[0] if argv else "async"
    _configure_logging()
    if kind == "user-provider":
        _user_provider()
    plugin = SyncTraced() if kind == "sync" else AsyncTraced()
    if len(argv) >= 3 and argv[1] == "grpc":
        plugwire.serve(plugin, transport="grpc", address=argv[2])
    plugwire.serve(plugin)


if __name__ == "__main__":
    main(sys.argv[1:])
