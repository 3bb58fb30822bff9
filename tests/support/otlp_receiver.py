"""A real OTLP/HTTP receiver for tests: a loopback HTTP server that decodes what exporters
send with the `opentelemetry-proto` classes, as a collector would.

    with OTLPReceiver() as receiver:
        ...  # point an exporter at receiver.endpoint
        spans = receiver.wait_for_spans(lambda spans: len(spans) >= 2)

Spans and metric points come back as the protobuf messages themselves (with their resource
attributes alongside), so tests assert on exactly what went over the wire.

`OTLPGrpcReceiver` is the same over OTLP/gRPC: a real `grpc.server` on loopback serving the
collector's metrics and trace services. Both take `hold`: an Event every export waits on before
it is answered (a collector that does not answer); it is set when the receiver closes.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["OTLPGrpcReceiver", "OTLPReceiver", "ReceivedMetric", "ReceivedSpan", "resource_attributes"]


def resource_attributes(resource: Any) -> dict[str, Any]:
    """A protobuf `Resource`'s attributes as a plain dict (string, int, double and bool values)."""
    result: dict[str, Any] = {}
    for item in resource.attributes:
        value = item.value
        result[item.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return result


@dataclass(frozen=True)
class ReceivedSpan:
    span: Any  # opentelemetry.proto.trace.v1.trace_pb2.Span
    resource: dict[str, Any]

    @property
    def trace_id(self) -> str:
        return bytes(self.span.trace_id).hex()

    @property
    def span_id(self) -> str:
        return bytes(self.span.span_id).hex()

    @property
    def parent_span_id(self) -> str:
        return bytes(self.span.parent_span_id).hex()

    @property
    def attributes(self) -> dict[str, Any]:
        return resource_attributes(self.span)


@dataclass(frozen=True)
class ReceivedMetric:
    metric: Any  # opentelemetry.proto.metrics.v1.metrics_pb2.Metric
    resource: dict[str, Any]


def _spans_of(traces: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    received: list[ReceivedSpan] = []
    for resource_spans in traces.resource_spans:
        resource = resource_attributes(resource_spans.resource)
        for scope in resource_spans.scope_spans:
            received.extend(ReceivedSpan(span, resource) for span in scope.spans)
    return received


def _metrics_of(exported: ExportMetricsServiceRequest) -> list[ReceivedMetric]:
    received: list[ReceivedMetric] = []
    for resource_metrics in exported.resource_metrics:
        resource = resource_attributes(resource_metrics.resource)
        for scope in resource_metrics.scope_metrics:
            received.extend(ReceivedMetric(metric, resource) for metric in scope.metrics)
    return received


class OTLPReceiver:
    """Collects OTLP/HTTP protobuf exports on `endpoint` (``http://127.0.0.1:<port>``).

    Args:
        status: The HTTP status every export is answered with (e.g. 503 for a collector
            that refuses everything); 200 by default.
        hold: If given, every export waits for it before it is answered (set at close).
    """

    def __init__(self, *, status: int = 200, hold: threading.Event | None = None) -> None:
        self.status = status
        self.hold = hold
        self.spans: list[ReceivedSpan] = []
        self.metrics: list[ReceivedMetric] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers) of each POST
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                reply = receiver._accept(self.path, dict(self.headers.items()), body)
                if receiver.hold is not None:
                    receiver.hold.wait()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _accept(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        with self._changed:
            self.requests.append((path, headers))
            if path.endswith("/v1/traces"):
                self.spans.extend(_spans_of(ExportTraceServiceRequest.FromString(body)))
                reply: Any = ExportTraceServiceResponse()
            else:
                self.metrics.extend(_metrics_of(ExportMetricsServiceRequest.FromString(body)))
                reply = ExportMetricsServiceResponse()
            self._changed.notify_all()
        return bytes(reply.SerializeToString())

    def wait_for_spans(self, ready: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0) -> list[ReceivedSpan]:
        """Block until `ready(spans so far)` is true; the spans. AssertionError on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: ready(list(self.spans)), timeout):
                raise AssertionError(f"spans not received within {timeout}s; got {[s.span.name for s in self.spans]}")
            return list(self.spans)

    def wait_for_metrics(
        self, ready: Callable[[list[ReceivedMetric]], bool], timeout: float = 10.0
    ) -> list[ReceivedMetric]:
        """Block until `ready(metrics so far)` is true; the metrics. AssertionError on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: ready(list(self.metrics)), timeout):
                raise AssertionError(
                    f"metrics not received within {timeout}s; got {[m.metric.name for m in self.metrics]}"
                )
            return list(self.metrics)


class OTLPGrpcReceiver(OTLPReceiver):
    """Collects OTLP/gRPC exports on `endpoint` (``http://127.0.0.1:<port>``, plaintext): a
    real `grpc.server` serving the collector's MetricsService and TraceService. `requests`
    holds ``(method, metadata)`` per export; the rest is as `OTLPReceiver`."""

    def __init__(self, *, hold: threading.Event | None = None) -> None:
        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        self.status = 200
        self.hold = hold
        self.spans = []
        self.metrics = []
        self.requests = []
        self._changed = threading.Condition()
        receiver = self

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: ExportMetricsServiceRequest, context: Any) -> ExportMetricsServiceResponse:
                with receiver._changed:
                    receiver.requests.append(("metrics", dict(context.invocation_metadata())))
                    receiver.metrics.extend(_metrics_of(request))
                    receiver._changed.notify_all()
                if receiver.hold is not None:
                    receiver.hold.wait()
                return ExportMetricsServiceResponse()

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: ExportTraceServiceRequest, context: Any) -> ExportTraceServiceResponse:
                with receiver._changed:
                    receiver.requests.append(("traces", dict(context.invocation_metadata())))
                    receiver.spans.extend(_spans_of(request))
                    receiver._changed.notify_all()
                if receiver.hold is not None:
                    receiver.hold.wait()
                return ExportTraceServiceResponse()

        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc-receiver")
        self._grpc_server = grpc.server(self._pool)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._grpc_server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._grpc_server)
        self._port = self._grpc_server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> OTLPGrpcReceiver:
        self._grpc_server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self._grpc_server.stop(grace=None).wait(10)
        self._pool.shutdown(wait=True)
