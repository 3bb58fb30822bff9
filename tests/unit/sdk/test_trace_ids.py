"""The W3C traceparent parser and the trace ids a plugin's log records get (`_sdk/tracing.py`,
`_sdk/logs.py`), without a process: the per-call context variable, a current OpenTelemetry
span, and each framework's hook (stdlib filter, structlog processor, loguru patcher)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from loguru import logger as loguru_logger
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from plugwire import ExecutionContext
from plugwire._sdk.logs import JsonLinesHandler
from plugwire._sdk.tracing import PluginTracing, parse_traceparent, plugin_tracing
from plugwire.sdk import TraceIdsFilter, add_trace_ids, current_trace_ids, loguru_trace_ids

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{SPAN}-01"


def test_a_valid_traceparent_gives_its_ids_and_flags() -> None:
    assert parse_traceparent(TRACEPARENT) == (TRACE, SPAN, 1)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == (TRACE, SPAN, 0)


def test_a_later_version_may_carry_more_fields() -> None:
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-more") == (TRACE, SPAN, 1)
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01more") is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00",
        f"00-{TRACE}-{SPAN}",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-extra",
        f"00_{TRACE}-{SPAN}-01",
        f"00-{TRACE[:-1]}g-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-0x",
    ],
)
def test_a_malformed_traceparent_is_none(value: str) -> None:
    assert parse_traceparent(value) is None


def test_without_plugwire_tracing_there_is_no_plugin_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLUGWIRE_TRACING", raising=False)
    assert plugin_tracing(lambda: "p") is None
    monkeypatch.setenv("PLUGWIRE_TRACING", "0")
    assert plugin_tracing(lambda: "p") is None


async def test_a_call_runs_with_its_traceparents_ids_and_they_end_with_it() -> None:
    tracing = PluginTracing("p", None)  # no OpenTelemetry: the ids come from the traceparent
    seen: list[tuple[str, str] | None] = []

    async def execute(ctx: ExecutionContext, request: str) -> str:
        seen.append(current_trace_ids())
        return request

    traced = tracing.wrap(execute, "stdio")
    assert await traced(ExecutionContext(traceparent=TRACEPARENT), "a") == "a"
    assert await traced(ExecutionContext(traceparent="garbage"), "b") == "b"
    assert await traced(ExecutionContext(), "c") == "c"
    assert seen == [(TRACE, SPAN), None, None]
    assert current_trace_ids() is None


async def test_each_frameworks_hook_adds_the_ids_while_traced_and_nothing_untraced() -> None:
    stream = io.StringIO()
    handler = JsonLinesHandler(stream)
    handler.addFilter(TraceIdsFilter())
    log = logging.getLogger("test.trace_ids")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    events: list[dict[str, object]] = []
    loguru_extras: list[dict[str, object]] = []
    patched = loguru_logger.patch(loguru_trace_ids)  # type: ignore[arg-type]
    sink = loguru_logger.add(
        lambda m: loguru_extras.append(dict(m.record["extra"])), filter=lambda r: "trace_id" in r["extra"]
    )

    async def execute(ctx: ExecutionContext, request: str) -> str:
        log.info("inside")
        events.append(add_trace_ids(None, "info", {"event": "inside"}))
        patched.info("inside")
        return request

    try:
        await PluginTracing("p", None).wrap(execute, "stdio")(ExecutionContext(traceparent=TRACEPARENT), "x")
        await execute(ExecutionContext(), "untraced")
    finally:
        log.removeHandler(handler)
        loguru_logger.remove(sink)
    traced_line, untraced_line = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (traced_line["trace_id"], traced_line["span_id"]) == (TRACE, SPAN)
    assert "trace_id" not in untraced_line
    assert events == [{"event": "inside", "trace_id": TRACE, "span_id": SPAN}, {"event": "inside"}]
    assert loguru_extras == [{"trace_id": TRACE, "span_id": SPAN}, {"trace_id": "", "span_id": ""}]


def test_a_current_opentelemetry_span_wins_over_the_calls_traceparent() -> None:
    provider = TracerProvider()  # the test's own; the global provider is left alone
    try:
        with trace.use_span(provider.get_tracer("t").start_span("s"), end_on_exit=True) as span:
            ids = current_trace_ids()
            context = span.get_span_context()
        assert ids == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
    finally:
        provider.shutdown()
    assert current_trace_ids() is None
