"""A plugin's log records carry the trace and span ids while tracing is on (issue 17, item 5):
a real subprocess plugin logs through stdlib `logging`, structlog and loguru, and the host's
records of its stderr show the ids of the span the plugin ran the call in."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from plugwire import ExecutionContext
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.plugins.traced_plugin import Resp

from .test_plugin_spans import SPAN_NAME, call_stdio, start_host_span, tracing_env

pytestmark = pytest.mark.usefixtures("no_leaks")

PLUGIN_LOGGER = "plugwire.plugin.traced"
LOGURU_LINE = re.compile(r"loguru says hi trace_id=(?P<trace>[0-9a-f]*) span_id=(?P<span>[0-9a-f]*)$")


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as running:
        yield running


@pytest.fixture
def host_spans() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    yield provider
    provider.shutdown()


def ids_by_framework(records: list[logging.LogRecord]) -> dict[str, tuple[str, str]]:
    """What the host's records of the plugin's three log lines say about trace and span."""
    found: dict[str, tuple[str, str]] = {}
    for record in records:
        if record.name != PLUGIN_LOGGER:
            continue
        message = record.getMessage()
        if message == "stdlib says hi":
            found["stdlib"] = (getattr(record, "trace_id", ""), getattr(record, "span_id", ""))
            assert getattr(record, "plugin_logger", "") == "traced"
        elif message == "structlog says hi":
            found["structlog"] = (getattr(record, "trace_id", ""), getattr(record, "span_id", ""))
        elif match := LOGURU_LINE.search(message):
            found["loguru"] = (match["trace"], match["span"])
    assert set(found) == {"stdlib", "structlog", "loguru"}, [r.getMessage() for r in records]
    return found


async def logged(env: dict[str, str], ctx: ExecutionContext, caplog: pytest.LogCaptureFixture, kind: str) -> Resp:
    caplog.set_level(logging.INFO, logger=PLUGIN_LOGGER)
    [answer] = await call_stdio(env, ctx, kind=kind, op="log")  # returns once the plugin stopped
    return answer


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_every_frameworks_records_carry_the_ids_of_the_plugins_span(
    receiver: OTLPReceiver, host_spans: TracerProvider, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    host = start_host_span(host_spans)
    answer = await logged(tracing_env(receiver), ExecutionContext(traceparent=host.traceparent), caplog, kind)
    [span] = [s for s in receiver.wait_for_spans(bool) if s.span.name == SPAN_NAME]
    expected = (host.trace_id, span.span_id)  # the host's trace, the plugin's server span
    assert (answer.trace_id, answer.span_id) == expected
    assert ids_by_framework(caplog.records) == {"stdlib": expected, "structlog": expected, "loguru": expected}


async def test_without_opentelemetry_the_records_carry_the_traceparents_ids(
    receiver: OTLPReceiver, host_spans: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    host = start_host_span(host_spans)
    env = tracing_env(receiver, PLUGWIRE_TEST_HIDE_OTEL="1")
    await logged(env, ExecutionContext(traceparent=host.traceparent), caplog, "async")
    expected = (host.trace_id, host.span_id)  # the caller's span: the plugin has none of its own
    assert ids_by_framework(caplog.records) == {"stdlib": expected, "structlog": expected, "loguru": expected}


async def test_untraced_the_records_carry_no_ids_and_still_reach_the_host(
    receiver: OTLPReceiver, host_spans: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    host = start_host_span(host_spans)
    env = tracing_env(receiver)
    del env["PLUGWIRE_TRACING"]
    await logged(env, ExecutionContext(traceparent=host.traceparent), caplog, "async")
    assert ids_by_framework(caplog.records) == {"stdlib": ("", ""), "structlog": ("", ""), "loguru": ("", "")}


async def test_a_call_without_a_traceparent_logs_no_ids_while_tracing_is_on(
    receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    await logged(tracing_env(receiver), ExecutionContext(), caplog, "async")
    assert ids_by_framework(caplog.records) == {"stdlib": ("", ""), "structlog": ("", ""), "loguru": ("", "")}
