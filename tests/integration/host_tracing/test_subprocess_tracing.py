"""Host-side tracing of calls to a real subprocess plugin, exported to a real OTLP/HTTP
receiver: the spans, their links and attributes, the traceparent the plugin sees, sampling,
a collector that is down or refuses, and the plugin environment while tracing is on."""

from __future__ import annotations

import math
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import plugwire
import plugwire._observe.tracing
from plugwire import (
    CircuitBreakerConfig,
    PluginConfig,
    RateLimitConfig,
    RetryConfig,
    TracingConfig,
)
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.plugins.traceparent_plugin import TraceReq, TraceResp

PLUGIN = str(Path(__file__).parents[2] / "support" / "plugins" / "traceparent_plugin.py")
SERVICE = "host-under-test"
SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2

Manager = plugwire.AsyncPluginManager[TraceReq, TraceResp]


class Recorder:
    """A logger (the manager's `logger=`) that keeps what it is told."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def _log(self, level: str, message: str) -> None:
        self.records.append((level, message))

    def debug(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log("debug", message)

    def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log("info", message)

    def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log("warning", message)

    def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._log("error", message)

    def matching(self, level: str, text: str) -> list[str]:
        return [message for lvl, message in self.records if lvl == level and text in message]


def host_spans(receiver: OTLPReceiver) -> list[ReceivedSpan]:
    """The spans the host exported (the plugin process may export its own, as another service)."""
    return [span for span in receiver.spans if span.resource.get("service.name") == SERVICE]


def named(spans: list[ReceivedSpan], prefix: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.span.name.startswith(prefix)]


def traceparent_of(span: ReceivedSpan) -> str:
    """The W3C traceparent of a received span, without its flags (see `sampled`)."""
    return f"00-{span.trace_id}-{span.span_id}"


def ids(traceparent: str) -> str:
    """A traceparent without its flags (OpenTelemetry sets the 0x02 "random trace id" flag
    of Trace Context level 2 beside 0x01 "sampled")."""
    return traceparent.rsplit("-", 1)[0]


def sampled(traceparent: str) -> bool:
    return bool(traceparent) and bool(int(traceparent.rsplit("-", 1)[1], 16) & 0x01)


def plugin_config(name: str = "tp", **sections: Any) -> PluginConfig:
    return PluginConfig(name=name, **sections)


@pytest.fixture
def receiver() -> Any:
    with OTLPReceiver() as running:
        yield running


async def start(manager: Manager, name: str = "tp", **sections: Any) -> None:
    await manager.register(
        plugwire.subprocess(sys.executable, PLUGIN), name=name, config=plugin_config(name, **sections)
    )


def traced(endpoint: str, sample_rate: float = 1.0) -> TracingConfig:
    return TracingConfig(enabled=True, service_name=SERVICE, endpoint=endpoint, sample_rate=sample_rate)


@pytest.fixture
async def manager(receiver: OTLPReceiver) -> AsyncIterator[Manager]:
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as running:
        await running.enable_tracing(traced(receiver.endpoint))
        yield running


async def test_a_call_makes_an_execute_span_and_a_child_attempt_span_seen_by_the_plugin(
    receiver: OTLPReceiver,
) -> None:
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await manager.enable_tracing(traced(receiver.endpoint))
        await start(manager)
        answer = await manager.execute("tp", TraceReq(text="hello"))
    spans = host_spans(receiver)
    (execute,) = named(spans, "plugwire.execute tp")
    (attempt,) = named(spans, "plugwire.attempt tp")
    assert attempt.trace_id == execute.trace_id
    assert attempt.parent_span_id == execute.span_id
    assert execute.parent_span_id == ""  # a new trace: no application span was active
    assert execute.span.kind == SPAN_KIND_INTERNAL
    assert attempt.span.kind == SPAN_KIND_CLIENT
    # The plugin's execute saw the attempt span's context, sampled.
    assert ids(answer.traceparent) == traceparent_of(attempt)
    assert sampled(answer.traceparent)
    assert answer.text == "hello"
    request_id = attempt.attributes["plugwire.request_id"]
    assert len(request_id) == 32
    assert attempt.attributes == {
        "plugwire.plugin": "tp",
        "plugwire.transport": "executable",
        "plugwire.attempt": 1,
        "plugwire.request_id": request_id,
    }
    assert execute.attributes == {
        "plugwire.plugin": "tp",
        "plugwire.transport": "executable",
        "plugwire.request_id": request_id,
    }
    assert execute.span.status.code != STATUS_ERROR
    assert manager.tracing is not None
    assert manager.tracing.export_errors == 0
    assert manager.tracing.exported_spans == 2


async def test_a_failed_call_has_error_status_and_code_on_both_spans(manager: Manager, receiver: OTLPReceiver) -> None:
    await start(manager, retry=RetryConfig(max_retries=0))
    with pytest.raises(plugwire.ExecutionError):
        await manager.execute("tp", TraceReq(op="fail", fails=1))
    await manager.shutdown()
    spans = host_spans(receiver)
    for span in (*named(spans, "plugwire.execute"), *named(spans, "plugwire.attempt")):
        assert span.span.status.code == STATUS_ERROR
        assert span.span.status.message == "1203 EXECUTION_FAILED"
        assert span.attributes["plugwire.error.code"] == 1203
        assert span.attributes["error.type"] == "EXECUTION_FAILED"
    assert len(spans) == 2


async def test_a_retried_call_shows_one_attempt_span_per_attempt_and_retry_events(
    manager: Manager, receiver: OTLPReceiver
) -> None:
    await start(manager, retry=RetryConfig(max_retries=3, initial_interval=0.001, random_jitter=False))
    answer = await manager.execute("tp", TraceReq(op="fail", fails=2, text="third time"))
    await manager.shutdown()
    spans = host_spans(receiver)
    (execute,) = named(spans, "plugwire.execute")
    attempts = sorted(named(spans, "plugwire.attempt"), key=lambda span: span.attributes["plugwire.attempt"])
    assert [span.attributes["plugwire.attempt"] for span in attempts] == [1, 2, 3]
    assert all(span.parent_span_id == execute.span_id for span in attempts)
    assert [span.span.status.code == STATUS_ERROR for span in attempts] == [True, True, False]
    assert [span.attributes.get("plugwire.error.code") for span in attempts] == [1203, 1203, None]
    # Each attempt told the plugin its own span; the answer came from the last one.
    assert ids(answer.traceparent) == traceparent_of(attempts[2])
    events = [(event.name, event.attributes[0].value.int_value) for event in execute.span.events]
    assert events == [("plugwire.retry", 2), ("plugwire.retry", 3)]
    assert execute.span.status.code != STATUS_ERROR


async def test_a_breaker_refusal_is_an_event_on_the_execute_span_without_an_attempt(
    manager: Manager, receiver: OTLPReceiver
) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=1, min_request_threshold=1, recovery_timeout=60)
    await start(manager, retry=RetryConfig(max_retries=0), circuit_breaker=breaker)
    with pytest.raises(plugwire.ExecutionError):
        await manager.execute("tp", TraceReq(op="fail", fails=1))
    with pytest.raises(plugwire.CircuitOpenError):
        await manager.execute("tp", TraceReq())
    await manager.shutdown()
    spans = host_spans(receiver)
    executes = named(spans, "plugwire.execute")
    assert len(executes) == 2
    assert len(named(spans, "plugwire.attempt")) == 1  # the refused call never reached the plugin
    (refused,) = [span for span in executes if span.attributes["plugwire.error.code"] == 1401]
    assert [event.name for event in refused.span.events] == ["plugwire.circuit_open"]
    assert refused.span.status.code == STATUS_ERROR
    assert refused.span.status.message == "1401 CIRCUIT_OPEN"


async def test_a_rate_limited_call_is_an_event_on_the_execute_span(manager: Manager, receiver: OTLPReceiver) -> None:
    limit = RateLimitConfig(enabled=True, requests_per_second=0.001, burst_size=1)
    await start(manager, rate_limit=limit)
    await manager.execute("tp", TraceReq())
    with pytest.raises(plugwire.RateLimitedError):
        await manager.execute("tp", TraceReq())
    await manager.shutdown()
    executes = named(host_spans(receiver), "plugwire.execute")
    (limited,) = [span for span in executes if span.attributes.get("plugwire.error.code") == 1501]
    assert [event.name for event in limited.span.events] == ["plugwire.rate_limited"]


async def test_the_plugin_process_gets_the_tracing_environment(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "the-host-app")
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await manager.enable_tracing(traced(receiver.endpoint))
        await start(manager)

        async def env(name: str) -> str:
            return (await manager.execute("tp", TraceReq(op="env", text=name))).text

        assert await env("PLUGWIRE_TRACING") == "1"
        assert await env("OTEL_SERVICE_NAME") == "tp"  # each plugin is its own service
        assert await env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == f"{receiver.endpoint}/v1/traces"
        assert await env("OTEL_RESOURCE_ATTRIBUTES") == "deployment.environment=test"


async def test_enabling_at_run_time_traces_running_plugins_and_their_next_processes(
    receiver: OTLPReceiver,
) -> None:
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await start(manager)
        untraced = await manager.execute("tp", TraceReq(op="env", text="PLUGWIRE_TRACING"))
        assert (untraced.traceparent, untraced.text) == ("", "<unset>")
        await manager.enable_tracing(traced(receiver.endpoint))
        answer = await manager.execute("tp", TraceReq(op="env", text="PLUGWIRE_TRACING"))
        assert answer.traceparent.startswith("00-")
        assert answer.text == "<unset>"  # this process started before tracing was on...
        await manager.unregister("tp")
        await start(manager)
        restarted = await manager.execute("tp", TraceReq(op="env", text="PLUGWIRE_TRACING"))
        assert restarted.text == "1"  # ...the next one has the tracing environment
    assert len(named(host_spans(receiver), "plugwire.execute")) == 2


async def test_a_garbage_traceparent_from_the_plugin_changes_nothing(manager: Manager, receiver: OTLPReceiver) -> None:
    await start(manager)
    answer = await manager.execute("tp", TraceReq(op="garbage"))
    again = await manager.execute("tp", TraceReq(text="next"))
    await manager.shutdown()
    assert answer.text == "garbage"
    spans = host_spans(receiver)
    assert len(named(spans, "plugwire.execute")) == 2
    (second,) = [span for span in named(spans, "plugwire.attempt") if traceparent_of(span) == ids(again.traceparent)]
    assert second.span.status.code != STATUS_ERROR


@pytest.mark.parametrize("rate", [0.0, 1.0])
async def test_sample_rate_zero_records_nothing_and_one_records_everything(receiver: OTLPReceiver, rate: float) -> None:
    calls = 20
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await manager.enable_tracing(traced(receiver.endpoint, sample_rate=rate))
        await start(manager)
        answers = [await manager.execute("tp", TraceReq()) for _ in range(calls)]
    spans = host_spans(receiver)
    if rate == 0.0:
        assert spans == []
        # A new trace sampled out is neither recorded nor sent: nothing to continue.
        assert [answer.traceparent for answer in answers] == [""] * calls
    else:
        assert len(named(spans, "plugwire.execute")) == calls
        assert len(named(spans, "plugwire.attempt")) == calls
        assert all(sampled(answer.traceparent) for answer in answers)


async def test_sample_rate_one_half_records_about_half_the_calls(receiver: OTLPReceiver) -> None:
    calls, rate = 400, 0.5
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await manager.enable_tracing(traced(receiver.endpoint, sample_rate=rate))
        await start(manager)
        answers = [await manager.execute("tp", TraceReq()) for _ in range(calls)]
    spans = host_spans(receiver)
    recorded = named(spans, "plugwire.execute")
    # Binomial(400, 0.5): mean 200, sigma 10; 6 sigma either side fails about once in 10^9 runs.
    sigma = math.sqrt(calls * rate * (1 - rate))
    assert abs(len(recorded) - calls * rate) <= 6 * sigma, len(recorded)
    # Parent-based: every recorded call has its attempt recorded, every other one none.
    assert len(named(spans, "plugwire.attempt")) == len(recorded)
    assert sum(sampled(answer.traceparent) for answer in answers) == len(recorded)
    # The others carried no traceparent at all (a new trace sampled out sends none).
    assert sum(answer.traceparent == "" for answer in answers) == calls - len(recorded)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_collector_that_is_down_fails_no_call_and_the_shutdown_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bounds made short (5 s to flush, 10 s per export by default), so the test is too.
    monkeypatch.setattr(plugwire._observe.tracing, "FLUSH_LIMIT", 0.5)
    monkeypatch.setattr(plugwire._observe.tracing, "EXPORT_TIMEOUT", 3.0)  # retries outlast the flush
    logger = Recorder()
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp, logger=logger) as manager:
        await manager.enable_tracing(traced(endpoint))
        await start(manager)
        for _ in range(10):
            assert (await manager.execute("tp", TraceReq(text="ok"))).text == "ok"
        tracing = manager.tracing
        assert tracing is not None
    # The queued spans could not be delivered within the flush limit: the export was given
    # up and counted (and the shutdown did not wait for the exporter's retries).
    assert tracing.export_errors >= 1
    assert tracing.exported_spans == 0
    assert len(logger.matching("warning", "tracing: span export to")) == 1
    assert logger.matching("warning", "were dropped")


async def test_export_failures_are_counted_and_logged_once_per_streak(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")  # export every 20 ms instead of every 5 s
    logger = Recorder()
    receiver.status = 400  # a collector that refuses: no retry, a failed export each time
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp, logger=logger) as manager:
        await manager.enable_tracing(traced(receiver.endpoint))
        await start(manager)
        await manager.execute("tp", TraceReq())
        receiver.wait_for_spans(lambda spans: len(host_spans_of(spans)) >= 2)
        await manager.execute("tp", TraceReq())
        receiver.wait_for_spans(lambda spans: len(host_spans_of(spans)) >= 4)
        tracing = manager.tracing
        assert tracing is not None
        receiver.status = 200
        await manager.execute("tp", TraceReq())
    # (The receiver reads its status as it answers: the second call's batch may be answered
    # 200 already, so the counts are bounds.)
    assert tracing.export_errors >= 1
    assert 2 <= tracing.exported_spans <= 4
    assert len(logger.matching("warning", "tracing: span export to")) == 1
    assert len(logger.matching("info", "works again")) == 1


def host_spans_of(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.resource.get("service.name") == SERVICE]


async def test_a_replaced_generation_and_a_policy_reload_stay_traced(receiver: OTLPReceiver) -> None:
    """`replace()` starts a new generation and `reload_config()` rebuilds a plugin's pipeline:
    both keep the plugin's calls traced (and the new process has the tracing environment)."""
    plugin = PluginConfig(name="tp", executable=sys.executable, args=(PLUGIN,))
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp, plugwire.ManagerConfig(plugins=(plugin,))) as manager:
        await manager.enable_tracing(traced(receiver.endpoint))
        first = await manager.execute("tp", TraceReq())
        await manager.replace("tp")
        second = await manager.execute("tp", TraceReq())
        changed = msgspec.structs.replace(plugin, retry=plugwire.RetryConfig(max_retries=1))
        report = await manager.reload_config(plugwire.ManagerConfig(plugins=(changed,)))
        assert list(report.updated) == ["tp"]
        third = await manager.execute("tp", TraceReq())
    assert all(sampled(answer.traceparent) for answer in (first, second, third))
    spans = host_spans(receiver)
    assert len(named(spans, "plugwire.execute tp")) == 3
    assert len(named(spans, "plugwire.attempt tp")) == 3
