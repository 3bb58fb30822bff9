"""The OTLP metrics exporter against real receivers (OTLP/HTTP and OTLP/gRPC on loopback)
and real plugin processes: exact counts after a known mix of calls, headers and resource,
the final flush at shutdown, and collectors that are down, refusing or silent."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import plugwire
from plugwire import OTLPConfig, OTLPExporter
from plugwire.errors import ErrorCode
from plugwire.observe import DEFAULT_BUCKETS, ManagerMetrics
from plugwire.testing import FakeClock
from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPReceiver, ReceivedMetric, resource_attributes
from tests.support.plugins.echo_plugin import Req, Resp
from tests.support.procguard import eventually, python_plugin

pytestmark = pytest.mark.timeout(60)

PROTOCOLS = ["http/protobuf", "grpc"]


@contextmanager
def receiver_for(protocol: str, hold: threading.Event | None = None) -> Iterator[OTLPReceiver]:
    receiver = OTLPGrpcReceiver(hold=hold) if protocol == "grpc" else OTLPReceiver(hold=hold)
    with receiver:
        yield receiver


def manager() -> plugwire.AsyncPluginManager[Req, Resp]:
    """Two subprocess plugins; no retries and a breaker that opens after two failures, so
    every count below is exact; health checks only when the test asks (fake clock)."""
    return (
        plugwire.simple(Req, Resp, clock=FakeClock())
        .with_plugin("echo", python_plugin("echo_plugin.py"))
        .with_plugin("ill", python_plugin("echo_plugin.py"))
        .with_retry(max_retries=0)
        .with_circuit_breaker(failure_threshold=2)
        .build()
    )


async def known_mix(manager: plugwire.AsyncPluginManager[Req, Resp]) -> None:
    """echo: 3 successes, a 1203 and a 1204 (the breaker trips), a 1401 refusal; ill: one
    success that makes it sick, then one failed health check."""
    for _ in range(3):
        await manager.execute("echo", Req(text="hi"))
    for op, code in (("fail", ErrorCode.EXECUTION_FAILED), ("late", 1204), ("echo", ErrorCode.CIRCUIT_OPEN)):
        with pytest.raises(plugwire.PluginError) as caught:
            await manager.execute("echo", Req(op=op))
        assert caught.value.code == code
    await manager.execute("ill", Req(op="sick"))
    await manager.health()


def by_name(received: list[ReceivedMetric]) -> dict[str, list[Any]]:
    """Metric name -> its data points (over every export received)."""
    result: dict[str, list[Any]] = {}
    for item in received:
        metric = item.metric
        result.setdefault(metric.name, []).extend(getattr(metric, metric.WhichOneof("data")).data_points)
    return result


def value(points: list[Any], **attributes: Any) -> Any:
    """The one point whose attributes include `attributes`; its int or double value."""
    (point,) = [p for p in points if attributes.items() <= resource_attributes(p).items()]
    return getattr(point, point.WhichOneof("value"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_final_export_at_shutdown_carries_the_exact_counts_headers_and_resource(protocol: Any) -> None:
    with receiver_for(protocol) as receiver:
        config = OTLPConfig(
            receiver.endpoint,
            headers={"Api-Key": "secret"},  # gRPC metadata must be lowercase: the exporter sees to it
            interval=3600,  # no timed export: what arrives is the final flush
            protocol=protocol,
            service_name="billing",
        )
        exporter = OTLPExporter(config)
        async with manager() as pm:
            await pm.register_metrics_exporter(exporter)
            await known_mix(pm)
            assert receiver.metrics == []
        final: ManagerMetrics = pm.get_metrics()  # the snapshot taken at shutdown
        received = by_name(receiver.wait_for_metrics(bool))

    assert (exporter.exports, exporter.export_errors) == (1, 0)
    ((_, headers),) = receiver.requests
    assert {name.lower(): value for name, value in headers.items()}["api-key"] == "secret"
    assert {item.resource["service.name"] for item in receiver.metrics} == {"billing"}

    echo = {"plugin": "echo", "transport": "executable"}
    ill = {"plugin": "ill", "transport": "executable"}
    assert value(received["plugin_requests_total"], **echo) == 6
    assert value(received["plugin_requests_success"], **echo) == 3
    assert value(received["plugin_requests_failure"], **echo) == 3
    assert value(received["plugin_requests_total"], **ill) == 1
    assert value(received["plugin_requests_failure_by_code"], code=1203, **echo) == 1
    assert value(received["plugin_requests_failure_by_code"], code=1204, **echo) == 1
    assert value(received["plugin_requests_failure_by_code"], code=1401, **echo) == 1
    assert len(received["plugin_requests_failure_by_code"]) == 3
    assert value(received["plugin_circuit_breaker_trips"], **echo) == 1
    assert value(received["plugin_circuit_breaker_rejections"], **echo) == 1
    assert value(received["plugin_circuit_breaker_state"], state="open", **echo) == 1
    assert value(received["plugin_health_check_failures"], **ill) == 1
    assert value(received["plugin_health_check_failures"], **echo) == 0
    assert value(received["plugin_status"], status="degraded", **ill) == 1
    assert value(received["plugin_error_rate"], **echo) == 0.5
    assert value(received["plugin_active_requests"], **echo) == 0

    histograms = {resource_attributes(p)["plugin"]: p for p in received["plugin_request_duration"]}
    for name, expected in (("echo", 6), ("ill", 1)):
        point, snapshot = histograms[name], final.plugins[name].duration
        assert point.count == expected == snapshot.count
        assert list(point.bucket_counts) == list(snapshot.counts)
        assert sum(point.bucket_counts) == expected
        assert list(point.explicit_bounds) == list(DEFAULT_BUCKETS)
        assert point.sum == pytest.approx(snapshot.sum)
        assert point.sum > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_metrics_are_pushed_every_interval_while_calls_run(protocol: Any) -> None:
    with receiver_for(protocol) as receiver:
        exporter = OTLPExporter(OTLPConfig(receiver.endpoint, interval=0.05, protocol=protocol))
        async with manager() as pm:
            await pm.register_metrics_exporter(exporter)
            await pm.execute("echo", Req(text="one"))

            def counted(metrics: list[ReceivedMetric]) -> bool:
                totals = [
                    getattr(p, p.WhichOneof("value"))
                    for m in metrics
                    if m.metric.name == "plugin_requests_total"
                    for p in m.metric.sum.data_points
                    if resource_attributes(p)["plugin"] == "echo"
                ]
                return 1 in totals

            await asyncio.to_thread(receiver.wait_for_metrics, counted)
            await eventually(lambda: exporter.exports >= 1)  # the answer reaches the exporter after the receiver
    assert exporter.export_errors == 0


async def test_a_collector_that_is_down_fails_no_call_and_is_logged_once(
    unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    exporter = OTLPExporter(OTLPConfig(f"http://127.0.0.1:{unused_tcp_port}", interval=0.02, timeout=0.5))
    async with manager() as pm:
        await pm.register_metrics_exporter(exporter)
        await eventually(lambda: exporter.export_errors >= 3)
        for _ in range(5):
            assert (await pm.execute("echo", Req(text="still works"))).text == "still works"
        assert pm.get_metrics().plugins["echo"].requests_success == 5
    # shutdown returned; the final export was skipped (the collector never answered) and counted
    assert exporter.exports == 0
    assert exporter.export_errors >= 4
    warnings = [r for r in caplog.records if r.name == "plugwire.otlp" and "failed" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert str(unused_tcp_port) in warnings[0].getMessage()
    sdk_records = [r for r in caplog.records if r.name.startswith("opentelemetry")]
    assert sdk_records == []  # folded into the one warning above
    assert exporter.last_error


async def test_a_collector_that_refuses_then_recovers_is_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plugwire.otlp")
    with OTLPReceiver(status=400) as receiver:  # 400: not retried by the SDK
        exporter = OTLPExporter(OTLPConfig(receiver.endpoint, interval=0.02, timeout=1))
        async with manager() as pm:
            await pm.register_metrics_exporter(exporter)
            await eventually(lambda: exporter.export_errors >= 3)
            receiver.status = 200
            await eventually(lambda: exporter.exports >= 2)
    messages = [r.getMessage() for r in caplog.records if r.name == "plugwire.otlp"]
    assert sum("failed" in m for m in messages) == 1, messages
    assert sum("works again" in m for m in messages) == 1, messages
    assert "400" in (exporter.last_error or "")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_shutdown_is_bounded_by_the_exporters_timeout_when_the_collector_never_answers(protocol: Any) -> None:
    hold = threading.Event()  # released only when the receiver closes, after the shutdown
    with receiver_for(protocol, hold=hold) as receiver:
        exporter = OTLPExporter(OTLPConfig(receiver.endpoint, interval=3600, timeout=0.3, protocol=protocol))
        async with manager() as pm:
            await pm.register_metrics_exporter(exporter)
            assert (await pm.execute("echo", Req(text="x"))).text == "x"
        # The manager's own bound on closing an exporter is 10 s and the collector still
        # holds the export: the shutdown returned on the exporter's 0.3 s.
        assert not hold.is_set()
        assert len(receiver.requests) >= 1  # the final export reached the collector
        assert (exporter.exports, exporter.export_errors) == (0, 1)
        assert exporter.last_error


def test_the_blocking_manager_exports_through_its_loop_thread_and_flushes_on_exit() -> None:
    with OTLPReceiver() as receiver:
        exporter = OTLPExporter(OTLPConfig(receiver.endpoint, interval=3600))
        builder = plugwire.simple(Req, Resp).with_plugin("echo", python_plugin("echo_plugin.py"))
        with builder.build_blocking() as pm:
            pm.register_metrics_exporter(exporter)
            assert pm.execute("echo", Req(text="sync")).text == "sync"
        received = by_name(receiver.wait_for_metrics(bool))
    assert value(received["plugin_requests_success"], plugin="echo") == 1
    assert (exporter.exports, exporter.export_errors) == (1, 0)
