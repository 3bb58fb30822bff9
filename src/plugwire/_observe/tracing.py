"""Distributed tracing of a manager's calls with OpenTelemetry (`plugwire[otel]`).

`Tracing` wraps a running plugin's two call points, never its pipeline: the entry's handler
(user policies + the built-in pipeline) gets one span per `execute`, and the pipeline's
`terminal` (the transport's `call`) one child span per attempt, whose W3C `traceparent` is
put into the attempt's `ExecutionContext`, so the plugin receives it (the stdio wire `ctx`;
gRPC request metadata and call metadata). While tracing is off nothing is wrapped: the call
path is exactly the untraced one.

Nothing here may fail or slow a call: every step of the tracing code is guarded, a failure is
logged (once per streak) and the call goes on untraced; span export runs on the SDK's batch
thread, and its failures are counted (`Tracing.export_errors`), never raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from random import getrandbits
from typing import Any

from msgspec.structs import replace

from .._call import Call
from .._config import TracingConfig, config_from_data, tracing_traces_url
from .._errors import ErrorCode, MissingDependencyError, PluginError
from .._models import ExecutionContext
from .._transports.subprocess import SubprocessTransport
from .._types import LoggerLike

__all__ = [
    "EXPORT_TIMEOUT",
    "FLUSH_LIMIT",
    "OPERATION_KEY",
    "Tracing",
    "check_tracing_config",
    "require_otel",
]

#: The `ExecutionContext.metadata` key that names a call's execute span (`inject_tracing`).
OPERATION_KEY = "plugwire.operation"
#: Seconds one export to the collector may take, retries included (the OTLP exporter's own
#: default); exports run on the SDK's batch thread, never on a call.
EXPORT_TIMEOUT = 10.0
#: Seconds the manager's shutdown gives the spans still queued to reach the collector; then
#: the exporter is stopped (a dead collector never holds the shutdown longer).
FLUSH_LIMIT = 5.0

_OTEL_HINT = "pip install 'plugwire[otel]'"
_Handler = Callable[[Call], Awaitable[Any]]
_SAMPLED = frozenset("13579bdf")  # the last hex digit of a traceparent's flags with "sampled" (0x01) set
_TRACE_ID_LIMIT = (1 << 64) - 1  # the bits of a trace id a ratio sampler looks at (OpenTelemetry's)
_EVENTS: dict[int, str] = {
    ErrorCode.CIRCUIT_OPEN: "plugwire.circuit_open",
    ErrorCode.RATE_LIMITED: "plugwire.rate_limited",
}


def require_otel() -> None:
    """Check that the OpenTelemetry SDK and its OTLP/HTTP exporter can be imported.

    Raises:
        MissingDependencyError: 1011, naming `pip install 'plugwire[otel]'`.
    """
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace
        import opentelemetry.trace  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"tracing needs the otel extra: {_OTEL_HINT} ({type(exc).__name__}: {exc})", details={"extra": "otel"}
        ) from exc


def check_tracing_config(config: Any) -> TracingConfig:
    """A `TracingConfig` built in Python, checked as the config file's `tracing` section is.

    Raises:
        ConfigError: Naming the field, e.g. ``tracing.sample_rate`` or ``tracing.endpoint``.
    """
    import msgspec

    if not isinstance(config, TracingConfig):
        from .._errors import ConfigError

        raise ConfigError(
            f"enable_tracing: expected a TracingConfig, got {type(config).__name__}", code=ErrorCode.CONFIG_WRONG_TYPE
        )
    return config_from_data({"tracing": msgspec.to_builtins(config)}).tracing


def _version() -> str:
    # Imported here, when tracing is turned on: importlib.metadata pulls in ~30 modules (email,
    # zipfile, csv) whose objects every full garbage collection would scan, on every manager.
    from importlib import metadata

    try:
        return metadata.version("plugwire")
    except metadata.PackageNotFoundError:  # pragma: no cover (a source tree without metadata)
        return "0"


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class _CountingExporter:
    """Wraps the OTLP span exporter: counts failed exports, logs the first of each streak of
    failures and the recovery, and once closed drops what is left at once."""

    def __init__(self, inner: Any, url: str, logger: LoggerLike, success: Any, failure: Any) -> None:
        self.inner = inner
        self.url = url
        self.logger = logger
        self.errors = 0
        self.exported = 0
        self._success = success
        self._failure = failure
        self._streak = 0
        self._closed = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0

    def export(self, spans: Sequence[Any]) -> Any:
        with self._lock:
            if self._closed:
                self.errors += 1
                return self._failure
            self._busy += 1
        failure: str | None = None
        try:
            result = self.inner.export(spans)
            if result != self._success:
                failure = "the collector refused the spans or could not be reached"
        except Exception as exc:
            failure, result = f"{type(exc).__name__}: {exc}", self._failure
        with self._lock:
            self._busy -= 1
            self._idle.notify_all()
            if failure is None:
                self.exported += len(spans)
                recovered, self._streak = self._streak, 0
            else:
                self.errors += 1
                self._streak += 1
                first = self._streak == 1
        if failure is None:
            if recovered:
                _log(self.logger, "info", f"tracing: span export to {self.url} works again after {recovered} failures")
        elif first:
            _log(
                self.logger,
                "warning",
                f"tracing: span export to {self.url} failed ({failure}); the calls go on, and this and further "
                "failures are counted in manager.tracing.export_errors (logged again once an export succeeds)",
            )
        return result

    def shutdown(self) -> None:
        """Stop exporting (once): what is still queued is dropped (counted), a retry wait
        ends now, and an export under way is given a moment to return."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.inner.shutdown()
        except Exception as exc:
            _log(self.logger, "warning", f"tracing: closing the span exporter failed: {type(exc).__name__}: {exc}")
        with self._idle:
            self._idle.wait_for(lambda: not self._busy, timeout=1.0)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Tracing:
    """The tracing of one manager's calls (`manager.tracing` while tracing is on).

    Args:
        config: The checked settings.
        logger: Where tracing's own failures are logged.
        tracer_provider: The application's provider to use (when `config.endpoint` is
            empty); default: OpenTelemetry's global one.

    Attributes:
        config: The settings tracing was enabled with.
        traces_url: Where plugwire's own provider exports (`endpoint` + ``/v1/traces``), or
            "" when the application's provider is used.
        owns_provider: True when plugwire built the provider (an endpoint was set) and shuts
            it down with the manager.
        tracer_provider: The provider spans are made with.
    """

    def __init__(self, config: TracingConfig, logger: LoggerLike, *, tracer_provider: Any = None) -> None:
        require_otel()
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.config = config
        self.logger = logger
        self._context = otel_context
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self._kinds = (trace.SpanKind.INTERNAL, trace.SpanKind.CLIENT)
        self._error = trace.StatusCode.ERROR
        self._exporter: _CountingExporter | None = None
        self._processor: Any = None
        self._ids: Any = None  # plugwire's own provider: its id generator (see `_traced_execute`)
        self._bound = 0
        self._failing = False  # a streak of failures of the tracing code itself
        self.traces_url = ""
        if config.endpoint:
            if tracer_provider is not None:
                from .._errors import ConfigError

                raise ConfigError(
                    "enable_tracing: pass either tracing.endpoint (plugwire exports the spans with its own "
                    "provider) or tracer_provider (your provider exports them), not both",
                    code=ErrorCode.CONFIG_INVALID_VALUE,
                )
            self.traces_url = tracing_traces_url(config.endpoint)
            tracer_provider = self._own_provider(config)
        self.owns_provider = self._exporter is not None
        self.tracer_provider: Any = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.tracer = self.tracer_provider.get_tracer("plugwire", _version())
        host_otel = {key: value for key, value in os.environ.items() if key.startswith("OTEL_")}
        self._base_env = {**host_otel, "PLUGWIRE_TRACING": "1"}
        if self.traces_url:
            self._base_env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = self.traces_url

    def _own_provider(self, config: TracingConfig) -> Any:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        class ChosenIds(RandomIdGenerator):
            """Random ids, except the next trace id when the execute wrapper drew it already
            (to decide on it): the SDK's sampler then decides the same."""

            chosen = 0

            def generate_trace_id(self) -> int:
                chosen, self.chosen = self.chosen, 0
                return chosen or super().generate_trace_id()

        ratio = TraceIdRatioBased(config.sample_rate)
        self._ids, self._bound = ChosenIds(), ratio.bound
        provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(ratio),
            shutdown_on_exit=False,  # the manager's shutdown flushes it, bounded
            id_generator=self._ids,
        )
        self._exporter = _CountingExporter(
            OTLPSpanExporter(endpoint=self.traces_url, timeout=EXPORT_TIMEOUT),
            self.traces_url,
            self.logger,
            SpanExportResult.SUCCESS,
            SpanExportResult.FAILURE,
        )
        self._processor = BatchSpanProcessor(self._exporter)  # type: ignore[arg-type]
        provider.add_span_processor(self._processor)
        return provider

    # ------------------------------------------------------------------ reading
    @property
    def export_errors(self) -> int:
        """Exports of plugwire's own provider that failed (a batch each; 0 when the
        application's provider is used: its exporters are its own)."""
        return self._exporter.errors if self._exporter is not None else 0

    @property
    def exported_spans(self) -> int:
        """Spans plugwire's own provider delivered to the collector."""
        return self._exporter.exported if self._exporter is not None else 0

    def plugin_env(self, plugin: str) -> dict[str, str]:
        """What a subprocess plugin's environment gets while tracing is on: the host's
        `OTEL_*` variables, `PLUGWIRE_TRACING=1`, `OTEL_SERVICE_NAME` = the plugin's name and,
        with plugwire's own provider, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`."""
        return {**self._base_env, "OTEL_SERVICE_NAME": plugin}

    # --------------------------------------------------------------- wrapping
    def instrument(self, entry: Any) -> None:
        """Trace the calls of a running plugin (a `PluginEntry`): wrap its handler and its
        pipeline's terminal, and give a subprocess transport the tracing environment (for
        the processes it starts from now on)."""
        config = entry.config
        plugin, transport = config.name, config.transport.value
        pipeline = entry.pipeline
        if pipeline is not None:
            pipeline.terminal = self._traced_attempt(pipeline.terminal, plugin, transport)
        entry.handler = self._traced_execute(entry.handler, plugin, transport)
        self.prepare(entry.transport, plugin)

    def prepare(self, transport: Any, plugin: str) -> None:
        """Give a subprocess transport the tracing environment (`plugin_env`), for every
        process it starts from now on (before its first start, for a plugin registered while
        tracing is on)."""
        if isinstance(transport, SubprocessTransport):
            transport.extra_env = self.plugin_env(plugin)

    def _traced_execute(self, handler: _Handler, plugin: str, transport: str) -> _Handler:
        begin, finish = self._begin_execute, self._finish
        name = f"plugwire.execute {plugin}"
        # plugwire's own provider: a call that starts a trace (no traceparent given, no
        # OpenTelemetry context active) is decided here, on a trace id drawn here, as its
        # ratio sampler would. Sampled out, it costs no span and sends no traceparent (no
        # trace was recorded for the plugin to continue, and a fresh traceparent per call
        # measured ~3 µs of a 30 µs subprocess round trip); at `sample_rate=0` not even an
        # id is drawn. Sampled, `begin` has the SDK make the span with that id.
        own = self._ids is not None
        bound = self._bound
        current = self._context.get_current

        async def execute_span(call: Call) -> Any:
            chosen = 0
            if own and not call.context.traceparent:
                try:
                    if not current():  # (an empty OpenTelemetry context: no span, no baggage)
                        if not bound:
                            return await handler(call)
                        chosen = getrandbits(128) or 1
                        if chosen & _TRACE_ID_LIMIT >= bound:
                            return await handler(call)
                except Exception as exc:  # pragma: no cover (nothing above raises; never let it fail a call)
                    self._tracing_failed("sampling a call", exc)
                    chosen = 0
            scope = begin(call, name, plugin, transport, chosen)
            if scope is None:  # the tracing code failed: the call goes on untraced
                return await handler(call)
            if scope[0] is None:  # not recorded: only its traceparent goes on, to the plugin
                return await handler(scope[2])
            try:
                result = await handler(scope[2])
            except BaseException as exc:
                finish(scope, exc)
                raise
            finish(scope, None)
            return result

        execute_span.__qualname__ = f"traced_execute[{plugin}]"
        return execute_span

    def _traced_attempt(self, terminal: _Handler, plugin: str, transport: str) -> _Handler:
        begin, finish = self._begin_attempt, self._finish
        name = f"plugwire.attempt {plugin}"

        async def attempt_span(call: Call) -> Any:
            traceparent = call.context.traceparent
            # Sampled out (the execute span's flags say so): no attempt span; the plugin gets
            # the execute span's context, unsampled, so it records nothing either.
            if not traceparent or traceparent[-1] not in _SAMPLED:
                return await terminal(call)
            scope = begin(call, name, plugin, transport)
            if scope is None:
                return await terminal(call)
            try:
                result = await terminal(scope[2])
            except BaseException as exc:
                finish(scope, exc)
                raise
            finish(scope, None)
            return result

        attempt_span.__qualname__ = f"traced_attempt[{plugin}]"
        return attempt_span

    # ------------------------------------------------------------ span steps
    def _begin_execute(self, call: Call, name: str, plugin: str, transport: str, chosen: int = 0) -> Any:
        """Start the execute span: `(span, token, call)` with the span current and the call
        carrying its traceparent; `(None, None, call)` when it is not recorded (the call
        carries its traceparent, unsampled); None if the tracing code failed."""
        try:
            ctx = call.context
            parent = None  # the current context: the application's span, if any
            if ctx.traceparent:  # a context from `inject_tracing`, or one the caller set
                parent = self._propagator.extract({"traceparent": ctx.traceparent}, self._context.get_current())
            elif chosen:  # sampled by `execute_span`: the SDK's root span gets this trace id
                self._ids.chosen = chosen
            operation = ctx.metadata.get(OPERATION_KEY) if ctx.metadata else None
            span = self.tracer.start_span(operation or name, parent, self._kinds[0])
            if self._ids is not None:
                self._ids.chosen = 0
            sc = span.get_span_context()
            if sc.is_valid:
                traceparent = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
                call = replace(call, context=replace(ctx, traceparent=traceparent))
            if not span.is_recording():
                return (None, None, call)
            span.set_attributes(
                {"plugwire.plugin": plugin, "plugwire.transport": transport, "plugwire.request_id": ctx.request_id}
            )
            token = self._context.attach(self._trace.set_span_in_context(span, parent))
        except Exception as exc:
            if self._ids is not None:
                self._ids.chosen = 0  # never left for another trace
            self._tracing_failed("starting the execute span", exc)
            return None
        return (span, token, call)

    def _begin_attempt(self, call: Call, name: str, plugin: str, transport: str) -> Any:
        """Start an attempt's span (a child of the current execute span) and put its
        `traceparent` into the attempt's context; None if the tracing code failed."""
        try:
            if call.attempt > 1:
                parent = self._trace.get_current_span()
                if parent.is_recording():
                    parent.add_event("plugwire.retry", {"plugwire.attempt": call.attempt})
            span = self.tracer.start_span(name, None, self._kinds[1])
            if span.is_recording():
                span.set_attributes(
                    {
                        "plugwire.plugin": plugin,
                        "plugwire.transport": transport,
                        "plugwire.attempt": call.attempt,
                        "plugwire.request_id": call.context.request_id,
                    }
                )
            sc = span.get_span_context()
            if sc.is_valid:
                traceparent = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
                call = replace(call, context=replace(call.context, traceparent=traceparent))
        except Exception as exc:
            self._tracing_failed("starting an attempt span", exc)
            return None
        return (span, None, call)

    def _finish(self, scope: Any, error: BaseException | None) -> None:
        """End a span (and leave its context, for an execute span), with its outcome."""
        span, token = scope[0], scope[1]
        try:
            if error is not None and span.is_recording():
                if isinstance(error, PluginError):
                    code = error.code
                    event = _EVENTS.get(code)
                    if event is not None and token is not None:  # refused before any attempt
                        span.add_event(event, {"plugwire.error.code": code})
                    span.set_attributes({"plugwire.error.code": code, "error.type": _code_name(code)})
                    span.set_status(self._error, f"{code} {_code_name(code)}")
                else:
                    kind = "cancelled" if isinstance(error, asyncio.CancelledError) else type(error).__name__
                    span.set_attribute("error.type", kind)
                    span.set_status(self._error, kind)
        except Exception as exc:
            self._tracing_failed("recording a call's outcome", exc)
        finally:
            try:
                if token is not None:
                    self._context.detach(token)
                span.end()
            except Exception as exc:
                self._tracing_failed("ending a span", exc)
            else:
                if self._failing:
                    self._failing = False
                    _log(self.logger, "info", "tracing: spans are recorded again")

    def _tracing_failed(self, step: str, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            _log(
                self.logger,
                "error",
                f"tracing: {step} failed ({type(exc).__name__}: {exc}); the call goes on untraced "
                "(logged once until tracing works again)",
            )

    # --------------------------------------------------------- inject, close
    def inject(self, context: ExecutionContext | None, operation: str) -> ExecutionContext:
        """`context` (or a new one) carrying the caller's active span as its `traceparent`
        (unless it has one) and `operation` as the name of the call's execute span."""
        ctx = context if context is not None else ExecutionContext()
        try:
            traceparent = ctx.traceparent
            if not traceparent:
                sc = self._trace.get_current_span().get_span_context()
                if sc.is_valid:
                    traceparent = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
            metadata: Mapping[str, str] = {**ctx.metadata, OPERATION_KEY: operation} if operation else ctx.metadata
            return replace(ctx, traceparent=traceparent, metadata=dict(metadata))
        except Exception as exc:
            self._tracing_failed("inject_tracing", exc)
            return ctx

    async def aclose(self) -> None:
        """Flush and shut down plugwire's own provider, within `FLUSH_LIMIT` seconds (plus
        a moment for an export under way); the application's provider is left alone."""
        exporter = self._exporter
        if self._processor is None or exporter is None:
            return
        self._processor = None
        # The provider's shutdown has the batch thread export what is queued; if that takes
        # longer than the limit (a dead or slow collector), the exporter is stopped: a retry
        # wait ends at once and the rest is dropped, so the thread, and the shutdown, end.
        closing = asyncio.ensure_future(asyncio.to_thread(self.tracer_provider.shutdown))
        try:
            try:
                await asyncio.wait_for(asyncio.shield(closing), FLUSH_LIMIT)
            except TimeoutError:
                _log(
                    self.logger,
                    "warning",
                    f"tracing: spans not exported within {FLUSH_LIMIT:g}s of the shutdown were dropped "
                    f"({exporter.url} is slow or down)",
                )
                await asyncio.to_thread(exporter.shutdown)
                await asyncio.wait_for(asyncio.shield(closing), EXPORT_TIMEOUT)
        except TimeoutError:
            _log(self.logger, "error", "tracing: the span exporter's thread did not stop; left to end on its own")
        except Exception as exc:
            _log(
                self.logger, "error", f"tracing: shutting the tracer provider down failed: {type(exc).__name__}: {exc}"
            )


def _log(logger: LoggerLike, level: str, message: str) -> None:
    try:
        getattr(logger, level)(message)
    except Exception:  # a broken logger must never break a call or the exporter's thread
        logging.getLogger("plugwire.tracing").exception("the configured logger failed")
