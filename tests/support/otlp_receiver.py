"""A real OTLP/HTTP receiver for tests: a loopback HTTP server that decodes what exporters
send with the `opentelemetry-proto` classes, as a collector would.

    with OTLPReceiver() as receiver:
        ...  # point an exporter at receiver.endpoint
        spans = receiver.wait_for_spans(lambda spans: len(spans) >= 2)

Spans and metric points come back as the protobuf messages themselves (with their resource
attributes alongside), so tests assert on exactly what went over the wire.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
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

__all__ = ["OTLPReceiver", "ReceivedMetric", "ReceivedSpan", "resource_attributes"]


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


class OTLPReceiver:
    """Collects OTLP/HTTP protobuf exports on `endpoint` (``http://127.0.0.1:<port>``).

    Args:
        status: The HTTP status every export is answered with (e.g. 503 for a collector
            that refuses everything); 200 by default.
    """

    def __init__(self, *, status: int = 200) -> None:
        self.status = status
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
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _accept(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        with self._changed:
            self.requests.append((path, headers))
            if path.endswith("/v1/traces"):
                traces = ExportTraceServiceRequest.FromString(body)
                for resource_spans in traces.resource_spans:
                    resource = resource_attributes(resource_spans.resource)
                    for scope in resource_spans.scope_spans:
                        self.spans.extend(ReceivedSpan(span, resource) for span in scope.spans)
                reply: Any = ExportTraceServiceResponse()
            else:
                exported = ExportMetricsServiceRequest.FromString(body)
                for resource_metrics in exported.resource_metrics:
                    resource = resource_attributes(resource_metrics.resource)
                    for scope in resource_metrics.scope_metrics:
                        self.metrics.extend(ReceivedMetric(metric, resource) for metric in scope.metrics)
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
