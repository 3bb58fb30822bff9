"""Plugin-side tracing: continue the host's trace inside the plugin process.

The environment contract (a plugwire host sets these on the subprocess plugins it starts
while its tracing is on; set them yourself to drive a plugin by hand or in a test):

- ``PLUGWIRE_TRACING=1`` turns plugin-side tracing on. Any other value, or none: nothing of
  OpenTelemetry is imported and every call takes the untraced path (chosen once, at start).
- ``OTEL_SERVICE_NAME``: the resource's ``service.name`` (default: the plugin's name).
- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``), and the other
  standard ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_RESOURCE_ATTRIBUTES`` variables: read by the
  OpenTelemetry SDK's OTLP/HTTP span exporter and resource, as in any OpenTelemetry program.

With tracing on, each call's `ExecutionContext.traceparent` (W3C trace context,
``00-<32 hex trace id>-<16 hex span id>-<2 hex flags>``; over gRPC the ``traceparent`` call
metadata is preferred to the request's metadata map) is parsed:

- empty or malformed: the call runs untraced (no span, no ids in log records); it never fails
  because of its traceparent;
- valid, and OpenTelemetry (``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-http``,
  the ``plugwire[otel]`` extra) is importable: the call runs inside a SERVER span
  ``plugwire.plugin.execute``, a child of the traceparent's span, made current, so spans the
  plugin starts itself nest under it. Attributes: ``plugwire.plugin``, ``plugwire.request_id``,
  ``plugwire.transport``; on failure the status is ERROR (``plugwire.error_code`` for a coded
  error). The traceparent's sampled flag decides, as a parent-based sampler would: with ``-00``
  no span is started; the caller's span context is made current instead (so the plugin's own
  spans are not sampled either, and log records carry the caller's ids);
- valid, without OpenTelemetry: no span; log records carry the traceparent's ids.

Whose `TracerProvider`: if the plugin process already has a global provider when serving
starts (the plugin author configured OpenTelemetry before `serve()`), it is used as it is and
never shut down by plugwire. Otherwise plugwire makes one (OTLP/HTTP exporter, batch
processor, the resource above, parent-based sampling), sets it as the global provider, and
flushes it when the plugin stops, waiting at most `FLUSH_LIMIT` seconds (a dead collector
never holds the plugin's exit). One provider serves the whole process.

Imports only the standard library at module level (layer 2: no host code).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

__all__ = [
    "FLUSH_LIMIT",
    "SPAN_NAME",
    "TRACING_ENV",
    "PluginTracing",
    "current_trace_ids",
    "parse_traceparent",
    "plugin_tracing",
    "tracing_requested",
]

TRACING_ENV: Final = "PLUGWIRE_TRACING"
_SAMPLED: Final = 0x01  # the W3C trace-flags bit of the caller's sampling decision
SPAN_NAME: Final = "plugwire.plugin.execute"
FLUSH_LIMIT: Final = 3.0
"""Seconds a stopping plugin waits for its spans to be exported."""

_log = logging.getLogger("plugwire.sdk")
# version - trace id - parent span id - flags, and (a version above 00 only) more fields after a "-"
_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
_T = TypeVar("_T")

#: The ids of the traceparent of the call running in this context: set per call only while
#: tracing is on, only for a valid traceparent, and read only when no OpenTelemetry span is current.
_call_ids: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("plugwire_trace_ids", default=None)


def tracing_requested() -> bool:
    """Whether this process was started with ``PLUGWIRE_TRACING=1``."""
    return os.environ.get(TRACING_ENV) == "1"


def parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """The trace id, parent span id and flags of a W3C ``traceparent``; None when malformed.

    Follows the W3C Trace Context rules: lowercase hex, the version not ``ff``, ids not all
    zeros, and a version above ``00`` may carry more fields after a ``-``.
    """
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, more = match.groups()
    if version == "ff" or (more is not None and version == "00"):
        return None
    if trace_id == "00000000000000000000000000000000" or span_id == "0000000000000000":
        return None
    return trace_id, span_id, int(flags, 16)


def current_trace_ids() -> tuple[str, str] | None:
    """The ``(trace_id, span_id)`` to put in a log record now, as lowercase hex; None untraced.

    From the current OpenTelemetry span when OpenTelemetry is loaded and a span is current,
    else from the running call's traceparent (set only while plugin-side tracing is on).
    """
    otel = sys.modules.get("opentelemetry.trace")
    if otel is not None:
        span_context = otel.get_current_span().get_span_context()
        if span_context.is_valid:
            return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
    return _call_ids.get()


class _Spans:
    """The OpenTelemetry side: a tracer, and the provider plugwire made (None: the user's)."""

    def __init__(self, plugin_name: str) -> None:
        from opentelemetry import context, trace

        self._trace = trace
        self._context = context
        self.owned: Any = None
        provider: Any = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):  # nobody configured one: plugwire does
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

            named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
                "OTEL_RESOURCE_ATTRIBUTES", ""
            )
            resource = Resource.create({} if named else {"service.name": plugin_name})
            provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON), shutdown_on_exit=False)
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(provider)
            self.owned = provider
        self.tracer = provider.get_tracer("plugwire.sdk")
        self._kind = trace.SpanKind.SERVER
        self._error = trace.StatusCode.ERROR

    def _remote_parent(self, parsed: tuple[str, str, int]) -> Any:
        trace = self._trace
        trace_id, span_id, flags = parsed
        remote = trace.SpanContext(
            int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=trace.TraceFlags(flags)
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(remote))

    async def run(
        self, parsed: tuple[str, str, int], attributes: dict[str, str], call: Callable[[], Awaitable[_T]]
    ) -> _T:
        trace, context = self._trace, self._context
        try:
            parent = self._remote_parent(parsed)
            if not parsed[2] & _SAMPLED:
                # Not sampled by the host: no span to start (a parent-based sampler would drop
                # it); the host's span context is made current, so the plugin's own spans are
                # not sampled either, and log records and onward propagation carry the trace.
                token = context.attach(parent)
                span = None
            else:
                span = self.tracer.start_span(SPAN_NAME, context=parent, kind=self._kind, attributes=attributes)
                token = context.attach(trace.set_span_in_context(span, parent))
        except Exception:  # tracing never fails a call
            _log.exception("tracing: the call's span could not be started; it runs untraced")
            return await call()
        if span is None:
            try:
                return await call()
            finally:
                context.detach(token)
        try:
            return await call()
        except BaseException as exc:
            code = getattr(exc, "code", None)
            if isinstance(code, int):
                span.set_attribute("plugwire.error_code", code)
            if isinstance(exc, Exception):
                span.record_exception(exc)
            span.set_status(self._trace.Status(self._error, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            context.detach(token)
            span.end()

    def flush_now(self) -> None:
        if self.owned is not None:
            self.owned.force_flush()

    def shutdown_now(self) -> None:
        if self.owned is not None:
            self.owned.shutdown()  # the batch processor's last export (the caller bounds the wait)


def _in_thread(work: Callable[[], None]) -> concurrent.futures.Future[None]:
    """Run `work` in a daemon thread (one that may outlive a bounded wait: never joined for good)."""
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported to the waiter
            done.set_exception(exc)
        else:
            done.set_result(None)

    threading.Thread(target=run, name="otel-span-flush", daemon=True).start()
    return done


class PluginTracing:
    """Traces the calls of one plugin (see the module docstring for what, and when).

    Made by `plugin_tracing()`; the stdio and gRPC servers wrap their execute with `wrap()`
    and flush at stop.
    """

    def __init__(self, plugin_name: str, spans: _Spans | None) -> None:
        self.plugin_name = plugin_name
        self._spans = spans

    @property
    def exports_spans(self) -> bool:
        """Whether calls get OpenTelemetry spans (else only log records get the ids)."""
        return self._spans is not None

    def wrap(self, execute: Callable[..., Awaitable[_T]], transport: str) -> Callable[..., Awaitable[_T]]:
        """`execute(ctx, ...)`, run inside the call's span (or with its ids for log records)."""
        spans = self._spans
        name = self.plugin_name
        if spans is None:

            async def with_ids(ctx: Any, *args: Any) -> _T:
                parsed = parse_traceparent(ctx.traceparent) if ctx.traceparent else None
                if parsed is None:
                    return await execute(ctx, *args)
                token = _call_ids.set((parsed[0], parsed[1]))
                try:
                    return await execute(ctx, *args)
                finally:
                    _call_ids.reset(token)

            return with_ids

        async def in_span(ctx: Any, *args: Any) -> _T:
            parsed = parse_traceparent(ctx.traceparent) if ctx.traceparent else None
            if parsed is None:
                return await execute(ctx, *args)
            attributes = {
                "plugwire.plugin": name,
                "plugwire.request_id": ctx.request_id,
                "plugwire.transport": transport,
            }
            return await spans.run(parsed, attributes, lambda: execute(ctx, *args))

        return in_span

    async def aflush(self, limit: float = FLUSH_LIMIT) -> None:
        """Export the spans ended so far, waiting at most `limit` seconds (the provider stays)."""
        if self._spans is None or self._spans.owned is None:
            return  # nothing of plugwire's to flush: a user's provider is flushed by its owner
        waiting = _in_thread(self._spans.flush_now)
        try:
            await asyncio.wait_for(asyncio.wrap_future(waiting), limit)
        except TimeoutError:  # a slow or dead collector: the spans are given up, the plugin stops anyway
            _log.warning("spans not exported within %gs; given up", limit)
        except Exception as exc:
            _log.warning("exporting spans failed: %s: %s", type(exc).__name__, exc)

    def shutdown(self, limit: float = FLUSH_LIMIT) -> None:
        """Export what is left and stop the exporter (the process is ending), at most `limit` seconds."""
        if self._spans is None or self._spans.owned is None:
            return  # a user's provider is shut down by its owner
        waiting = _in_thread(self._spans.shutdown_now)
        try:
            waiting.result(limit)
        except TimeoutError:
            _log.warning("spans not exported within %gs; given up", limit)
        except Exception as exc:
            _log.warning("exporting spans failed: %s: %s", type(exc).__name__, exc)


_spans_by_process: list[_Spans] = []  # the one `_Spans` of this process, once made
_spans_lock = threading.Lock()


def plugin_tracing(name_of: Callable[[], str]) -> PluginTracing | None:
    """The tracing of this plugin process, or None when ``PLUGWIRE_TRACING`` is not ``1``.

    `name_of()` gives the plugin's name (called only when tracing is on). OpenTelemetry is
    set up once per process; without it the result only puts ids in log records.
    """
    if not tracing_requested():
        return None
    try:
        name = name_of()
    except Exception:
        name = "plugin"
    with _spans_lock:
        if not _spans_by_process:
            try:
                _spans_by_process.append(_Spans(name))
            except ImportError:  # no OpenTelemetry here: log records still get the traceparent's ids
                return PluginTracing(name, None)
            except Exception as exc:  # e.g. a bad OTEL_* value: the plugin serves, without spans
                _log.warning("tracing: OpenTelemetry could not be set up (%s: %s); no spans", type(exc).__name__, exc)
                return PluginTracing(name, None)
        spans = _spans_by_process[0]
    return PluginTracing(name, spans)
