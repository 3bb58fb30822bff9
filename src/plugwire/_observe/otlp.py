"""The OTLP metrics exporter: the manager's snapshot, pushed to an OpenTelemetry collector.

Design. The issue suggested observable instruments over the snapshot; that does not fit
here. The OpenTelemetry SDK has no observable histogram, and feeding a synchronous one would
mean recording every call's duration through the SDK, on the call path. Its periodic reader
also calls instrument callbacks on its own thread, while the snapshot (`source()`, the
manager's `get_metrics`) reads the manager's dicts and must run on the manager's loop. So
this exporter keeps the SDK's wire half and does the reading half itself:

- every `interval` seconds a task on the manager's loop takes ONE snapshot;
- a single worker thread (``plugwire-otlp-export``) turns it into the SDK's `MetricsData`
  (cumulative monotonic `Sum`s for counters, `Gauge`s for the rest, and the latency
  histogram as a cumulative `Histogram` with the snapshot's own bucket bounds, counts, sum
  and count) and hands it to the SDK's OTLP metric exporter (`export()`: http/protobuf or
  gRPC), whose own deadline, `timeout`, bounds the export and its retries;
- nothing runs per call: the numbers come from the counters the call path keeps anyway.

A collector that is down never reaches a call: the export fails in the worker thread, the
task counts it (`export_errors`), and the first failure of a streak is logged once (the SDK's
own per-attempt log lines from this exporter's thread are folded into that one message);
the first success after a streak is logged too. `aclose()` stops the timer, makes a final
export of a fresh snapshot (the manager takes its final one first), then shuts the SDK
exporter down and waits for its thread; with a dead collector it returns within `timeout`.

Names are the README's (`plugin_requests_total`, ...), not OpenTelemetry's dotted style, so a
dashboard built on them reads the same series whether they were scraped by Prometheus or
pushed through a collector; units ride in each metric's `unit` field. Every point carries the
`plugin` and `transport` attributes; the manager-level totals are their sums (no separate
unlabeled points, so summing never counts twice). The table is `otlp_data.METRICS` and
docs/observability.md.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .._codes import ErrorCode
from .._errors import ConfigError, MissingDependencyError, ObservabilityError
from .metrics import ManagerMetrics, MetricsSource
from .otlp_data import metrics_data

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter

__all__ = ["OTLPConfig", "OTLPExporter"]

_log = logging.getLogger("plugwire.otlp")

Protocol = Literal["http/protobuf", "grpc"]
_PROTOCOLS: tuple[str, ...] = ("http/protobuf", "grpc")
_DEFAULT_ENDPOINTS = {"http/protobuf": "http://localhost:4318", "grpc": "http://localhost:4317"}
_HTTP_SIGNAL_PATH = "/v1/metrics"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_OTEL_HINT = "pip install 'plugwire[otel]'"
_GRPC_HINT = "pip install 'plugwire[otel]' opentelemetry-exporter-otlp-proto-grpc"
_WORKER = "plugwire-otlp-export"


def _positive_seconds(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{path}: expected a positive number of seconds, got {value!r}")
    return float(value)


def _endpoint_url(endpoint: object, protocol: str) -> str:
    """The URL the SDK exporter is given for `endpoint` (see `OTLPConfig.endpoint`)."""
    path = "OTLPConfig.endpoint"
    if not isinstance(endpoint, str):
        raise ConfigError(f"{path}: expected a URL string, got {type(endpoint).__name__}")
    url = endpoint or _DEFAULT_ENDPOINTS[protocol]
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"{path}: {url!r} is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{path}: {url!r} is not an http:// or https:// URL with a host")
    if parts.fragment or port == 0:
        raise ConfigError(f"{path}: {url!r} has a fragment or port 0")
    if protocol == "grpc":
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(f"{path}: a gRPC endpoint is scheme://host:port, without a path: got {url!r}")
        return url
    if parts.path in ("", "/"):  # a base URL: the OTLP/HTTP signal path is appended (OTel spec)
        return parts._replace(path=_HTTP_SIGNAL_PATH).geturl()
    return url


@dataclass(frozen=True, slots=True)
class OTLPConfig:
    """Where and how often `OTLPExporter` pushes metrics (README `OTLPConfig`).

    Attributes:
        endpoint: The collector's URL. With "http/protobuf", a base URL (no path, e.g.
            ``http://collector:4318``) gets ``/v1/metrics`` appended, as the OpenTelemetry
            spec does for ``OTEL_EXPORTER_OTLP_ENDPOINT``; a URL with a path is used as it is
            (``http://gateway/otlp/v1/metrics``). With "grpc" it is ``http://host:4317``
            (plaintext) or ``https://host:4317`` (TLS), without a path. Empty: the protocol's
            default on localhost (4318 for http/protobuf, 4317 for grpc).
        headers: Sent with every export (e.g. ``{"api-key": "secret"}``); with gRPC they are
            metadata, so their names are sent lowercased.
        interval: Seconds between exports (default 60, OpenTelemetry's default).
        protocol: "http/protobuf" (default; `plugwire[otel]`) or "grpc" (needs
            `opentelemetry-exporter-otlp-proto-grpc` as well).
        timeout: Seconds one export may take, the SDK's retries included (default 5).
        service_name: The ``service.name`` resource attribute (``OTEL_RESOURCE_ATTRIBUTES``
            adds more).

    Raises:
        ConfigError: A field is invalid; the message names it, e.g. ``OTLPConfig.interval``.
    """

    endpoint: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    interval: float = 60.0
    protocol: Protocol = "http/protobuf"
    timeout: float = 5.0
    service_name: str = "plugwire"

    def __post_init__(self) -> None:
        if self.protocol not in _PROTOCOLS:
            raise ConfigError(f"OTLPConfig.protocol: expected one of {', '.join(_PROTOCOLS)}, got {self.protocol!r}")
        _endpoint_url(self.endpoint, self.protocol)
        object.__setattr__(self, "interval", _positive_seconds(self.interval, "OTLPConfig.interval"))
        object.__setattr__(self, "timeout", _positive_seconds(self.timeout, "OTLPConfig.timeout"))
        if not isinstance(self.service_name, str) or not self.service_name:
            raise ConfigError(f"OTLPConfig.service_name: expected a non-empty string, got {self.service_name!r}")
        if not isinstance(self.headers, Mapping):
            raise ConfigError(
                f"OTLPConfig.headers: expected a mapping of str to str, got {type(self.headers).__name__}"
            )
        for name, value in self.headers.items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise ConfigError(f"OTLPConfig.headers: {name!r} is not a valid header name")
            if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
                raise ConfigError(f"OTLPConfig.headers[{name!r}]: expected a string without line breaks")
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    @property
    def url(self) -> str:
        """The URL exports go to (`endpoint` resolved as described above)."""
        return _endpoint_url(self.endpoint, self.protocol)


def _sdk_exporter_class(protocol: str) -> Callable[..., MetricExporter]:
    """The SDK's OTLP metric exporter for `protocol`, or MissingDependencyError naming the install."""
    try:
        import opentelemetry.sdk.metrics.export  # noqa: F401
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HTTPExporter
    except ImportError as exc:
        raise MissingDependencyError(
            f"OTLPExporter needs the otel extra: {_OTEL_HINT} ({type(exc).__name__}: {exc})",
            details={"extra": "otel"},
        ) from exc
    if protocol != "grpc":
        return HTTPExporter
    try:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    except ImportError as exc:
        raise MissingDependencyError(
            f"OTLPConfig.protocol 'grpc' needs the OTLP gRPC exporter: {_GRPC_HINT} ({type(exc).__name__}: {exc})",
            details={"extra": "otel", "package": "opentelemetry-exporter-otlp-proto-grpc"},
        ) from exc
    return OTLPMetricExporter


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class _QuietWorker(logging.Filter):
    """Drops the SDK's log records made on this exporter's worker thread, keeping what they
    said as the reason of the failure the exporter logs once per streak."""

    def __init__(self) -> None:
        super().__init__()
        self.thread: threading.Thread | None = None
        self.said: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.thread is None or record.thread != self.thread.ident:
            return True
        if record.levelno >= logging.WARNING and len(self.said) < 2:
            self.said.append(record.getMessage().rstrip("."))
        elif record.levelno >= logging.WARNING:
            self.said[-1] = record.getMessage().rstrip(".")
        return False

    @property
    def reason(self) -> str | None:
        """The first thing the SDK said about the export, and the last if it said more."""
        return " (then: ".join(self.said) + ")" * (len(self.said) - 1) if self.said else None


class OTLPExporter:
    """Pushes the manager's metrics to an OpenTelemetry collector over OTLP (README
    `NewOTLPExporter`); register it with `manager.register_metrics_exporter(...)`.

    Every `config.interval` seconds one snapshot is exported (see docs/observability.md
    for the metric names); one last export happens when the manager shuts down. A collector
    that is down or slow never fails or slows a call: exports run on one worker thread,
    failures are counted in `export_errors` and logged once per streak.

    Args:
        config: Endpoint, headers, interval, protocol, timeout and service name.

    Raises:
        MissingDependencyError: The OpenTelemetry SDK or the protocol's exporter is not
            installed (1011); the message names what to install.
    """

    def __init__(self, config: OTLPConfig | None = None) -> None:
        if config is None:
            config = OTLPConfig()
        elif not isinstance(config, OTLPConfig):
            raise ConfigError(
                f"OTLPExporter: expected an OTLPConfig, got {type(config).__name__}", code=ErrorCode.CONFIG_WRONG_TYPE
            )
        self.config = config
        self._exporter_class = _sdk_exporter_class(config.protocol)
        self._state = _State.NEW
        self._source: MetricsSource | None = None
        self._sdk: MetricExporter | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: Future[bool] | None = None
        self._quiet = _QuietWorker()
        self._loggers: list[logging.Logger] = []
        self._resource: Any = None
        self._scope: Any = None
        self._start_ns = 0
        self._exports = 0
        self._export_errors = 0
        self._failing = False
        self._last_error: str | None = None

    @property
    def endpoint(self) -> str:
        """The URL exports go to."""
        return self.config.url

    @property
    def exports(self) -> int:
        """Exports the collector accepted."""
        return self._exports

    @property
    def export_errors(self) -> int:
        """Exports that failed (collector down, refused, too slow) or were skipped at shutdown."""
        return self._export_errors

    @property
    def last_error(self) -> str | None:
        """Why the last failed export failed (None before any failure)."""
        return self._last_error

    def __repr__(self) -> str:
        return f"OTLPExporter({self.config.protocol} {self.endpoint}, {self._state.value})"

    async def start(self, source: MetricsSource) -> None:
        """Begin exporting `source()` every `interval` seconds (the manager calls this).

        Raises:
            ObservabilityError: The exporter was started before (2104): one exporter serves
                one manager.
        """
        if self._state is not _State.NEW:
            raise ObservabilityError(
                f"{self!r} was started before; make one exporter per manager",
                code=ErrorCode.EXPORTER_ALREADY_REGISTERED,
            )
        from importlib.metadata import version  # (here: it costs the manager's import 15 ms)

        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        config = self.config
        headers: dict[str, str] = dict(config.headers)
        if config.protocol == "grpc":
            headers = {name.lower(): value for name, value in headers.items()}
        self._sdk = self._exporter_class(endpoint=config.url, headers=headers, timeout=config.timeout)
        self._resource = Resource.create({"service.name": config.service_name})
        self._scope = InstrumentationScope("plugwire", version("plugwire"))
        self._start_ns = time.time_ns()
        self._source = source
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_WORKER)
        # The SDK logs each failed attempt; records from our worker fold into one message.
        self._loggers = [logging.getLogger(type(self._sdk).__module__), logging.getLogger(_SDK_GRPC_LOGGER)]
        for logger in self._loggers:
            logger.addFilter(self._quiet)
        self._state = _State.RUNNING
        self._task = asyncio.get_running_loop().create_task(self._run(), name="plugwire-otlp-export")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            await self._export()

    def _submit(self) -> Future[bool] | None:
        """Take one snapshot here, on the manager's loop, and export it on the worker (None,
        counted as a failed export, if the snapshot itself failed)."""
        assert self._source is not None
        assert self._worker is not None
        try:
            snapshot = self._source()
        except Exception as exc:  # an exporter must never raise into the manager
            self._quiet.said = [f"taking the snapshot failed: {type(exc).__name__}: {exc}"]
            self._record(False)
            return None
        self._inflight = self._worker.submit(self._export_in_worker, snapshot)
        return self._inflight

    async def _export(self) -> None:
        future = self._submit()
        if future is not None:
            ok = await asyncio.wrap_future(future)
            self._inflight = None  # recorded here; one cancelled mid-export is aclose's to record
            self._record(ok)

    def _export_in_worker(self, snapshot: ManagerMetrics) -> bool:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        assert self._sdk is not None
        self._quiet.thread = threading.current_thread()
        self._quiet.said = []
        try:
            data = metrics_data(snapshot, self._resource, self._scope, self._start_ns)
            result = self._sdk.export(data, timeout_millis=self.config.timeout * 1000)
        except Exception as exc:  # an exporter must never raise into the manager
            self._quiet.said.append(f"{type(exc).__name__}: {exc}")
            return False
        return result is MetricExportResult.SUCCESS

    def _record(self, ok: bool) -> None:
        """Count one export's outcome; log the first failure of a streak and its end."""
        if ok:
            self._exports += 1
            if self._failing:
                self._failing = False
                _log.info("OTLP metrics export to %s works again", self.endpoint)
            return
        self._export_errors += 1
        self._last_error = self._quiet.reason or "the collector refused or did not answer in time"
        if not self._failing:
            self._failing = True
            _log.warning(
                "OTLP metrics export to %s failed: %s; later failures are counted in export_errors "
                "until an export succeeds",
                self.endpoint,
                self._last_error,
            )

    async def aclose(self) -> None:
        """Export one last snapshot, then stop (the manager calls this at shutdown).

        Waits at most `timeout` for an export still in flight and for the final one; when the
        collector did not take the previous export, the final one is skipped (counted as an
        error). Then the SDK exporter is shut down and its worker thread ends. Idempotent.
        """
        if self._state is not _State.RUNNING:
            self._state = _State.CLOSED
            return
        self._state = _State.CLOSED
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        assert self._task is not None
        assert self._worker is not None
        assert self._sdk is not None
        self._task.cancel()
        await asyncio.wait([self._task])  # (a cancellation of aclose itself still propagates)
        try:
            inflight, self._inflight = self._inflight, None
            if inflight is not None and not inflight.cancelled():
                finished = await self._wait(inflight, deadline - loop.time())
                self._record(finished and inflight.result())
            if self._failing:  # the collector did not take the last export: do not wait on it again
                self._export_errors += 1
                _log.warning("OTLP metrics export to %s: collector unreachable, final export skipped", self.endpoint)
            elif (final := self._submit()) is not None:
                finished = await self._wait(final, deadline - loop.time())
                self._record(finished and final.result())
        finally:
            self._sdk.shutdown()  # ends the SDK's retry waits and closes its connections
            for logger in self._loggers:
                logger.removeFilter(self._quiet)
            # The worker's last export is bounded by the SDK's own deadline (`timeout`); once
            # it is done the thread takes `_idle` and ends.
            idle = self._worker.submit(_idle)
            self._worker.shutdown(wait=False)
            await asyncio.shield(asyncio.wrap_future(idle))
            self._worker.shutdown(wait=True)  # the idle thread's exit

    @staticmethod
    async def _wait(future: Future[bool], timeout: float) -> bool:
        """Wait up to `timeout` seconds for `future`; whether it finished (if not, it is
        cancelled: one that had not started will not run)."""
        wrapped = asyncio.wrap_future(future)
        done, _ = await asyncio.wait([wrapped], timeout=max(timeout, 0.0))
        if not done:
            wrapped.cancel()
        return bool(done)


def _idle() -> None:
    """The worker's last job: done once the export queued before it is."""


# The gRPC exporter logs from its shared base module, not from the metric exporter's.
_SDK_GRPC_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"
