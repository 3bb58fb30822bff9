"""OTLPConfig's validation and endpoint rules, the snapshot → OTLP mapping, and the exporter's
lifecycle (the wire itself is tested against real receivers in tests/integration/)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import msgspec
import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

import plugwire
from plugwire import ConfigError, Status
from plugwire._observe.otlp_data import METRICS, metrics_data
from plugwire.errors import ErrorCode, MissingDependencyError, ObservabilityError
from plugwire.observe import DEFAULT_BUCKETS, Histogram, ManagerMetrics, OTLPConfig, OTLPExporter, PluginMetrics
from tests.support.otlp_receiver import OTLPReceiver, resource_attributes

pytestmark = pytest.mark.timeout(30)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("endpoint", "protocol", "url"),
    [
        ("", "http/protobuf", "http://localhost:4318/v1/metrics"),
        ("", "grpc", "http://localhost:4317"),
        ("http://collector:4318", "http/protobuf", "http://collector:4318/v1/metrics"),
        ("http://collector:4318/", "http/protobuf", "http://collector:4318/v1/metrics"),
        ("https://otlp.example.com", "http/protobuf", "https://otlp.example.com/v1/metrics"),
        ("http://collector:4318/v1/metrics", "http/protobuf", "http://collector:4318/v1/metrics"),
        ("http://gateway/otlp/v1/metrics", "http/protobuf", "http://gateway/otlp/v1/metrics"),
        ("http://gateway/custom?tenant=a", "http/protobuf", "http://gateway/custom?tenant=a"),
        ("http://otel-collector:4317", "grpc", "http://otel-collector:4317"),
        ("https://otel-collector:4317/", "grpc", "https://otel-collector:4317/"),
    ],
)
def test_an_http_base_url_gets_the_signal_path_and_a_url_with_a_path_is_kept(
    endpoint: str, protocol: Any, url: str
) -> None:
    assert OTLPConfig(endpoint, protocol=protocol).url == url


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"endpoint": "collector:4318"}, "OTLPConfig.endpoint"),
        ({"endpoint": "ftp://collector"}, "OTLPConfig.endpoint"),
        ({"endpoint": "http://"}, "OTLPConfig.endpoint"),
        ({"endpoint": "http://collector:99999"}, "OTLPConfig.endpoint"),
        ({"endpoint": "http://collector:port"}, "OTLPConfig.endpoint"),
        ({"endpoint": "http://collector:0"}, "OTLPConfig.endpoint"),
        ({"endpoint": "http://collector#frag"}, "OTLPConfig.endpoint"),
        ({"endpoint": "http://collector:4317/v1/metrics", "protocol": "grpc"}, "OTLPConfig.endpoint"),
        ({"endpoint": 4318}, "OTLPConfig.endpoint"),
        ({"interval": 0}, "OTLPConfig.interval"),
        ({"interval": -5}, "OTLPConfig.interval"),
        ({"interval": float("nan")}, "OTLPConfig.interval"),
        ({"interval": "60"}, "OTLPConfig.interval"),
        ({"interval": True}, "OTLPConfig.interval"),
        ({"timeout": 0.0}, "OTLPConfig.timeout"),
        ({"timeout": -1}, "OTLPConfig.timeout"),
        ({"timeout": float("inf")}, "OTLPConfig.timeout"),
        ({"protocol": "http/json"}, "OTLPConfig.protocol"),
        ({"protocol": "GRPC"}, "OTLPConfig.protocol"),
        ({"headers": {"api key": "x"}}, "OTLPConfig.headers"),
        ({"headers": {"api-key": "x\r\nInjected: 1"}}, "OTLPConfig.headers['api-key']"),
        ({"headers": {"api-key": 5}}, "OTLPConfig.headers['api-key']"),
        ({"headers": [("api-key", "x")]}, "OTLPConfig.headers"),
        ({"service_name": ""}, "OTLPConfig.service_name"),
    ],
)
def test_bad_settings_are_a_config_error_naming_the_field(settings: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OTLPConfig(**settings)
    assert caught.value.message.startswith(path + ":"), caught.value.message
    assert caught.value.code == ErrorCode.CONFIG_INVALID
    assert isinstance(caught.value, ValueError)


def test_the_config_is_frozen_and_keeps_its_own_copy_of_the_headers() -> None:
    headers = {"api-key": "secret"}
    config = OTLPConfig("http://collector:4318", headers=headers, interval=15, timeout=2)
    headers["api-key"] = "changed"
    assert dict(config.headers) == {"api-key": "secret"}
    assert (config.interval, config.timeout, config.protocol) == (15.0, 2.0, "http/protobuf")
    with pytest.raises(AttributeError):
        config.interval = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.headers["api-key"] = "x"  # type: ignore[index]


def test_the_exporter_refuses_what_is_not_a_config() -> None:
    with pytest.raises(ConfigError) as caught:
        OTLPExporter({"endpoint": "http://collector:4318"})  # type: ignore[arg-type]
    assert caught.value.code == ErrorCode.CONFIG_WRONG_TYPE


def test_grpc_without_its_exporter_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # The package is installed in the dev env; None in sys.modules makes its import fail.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.metric_exporter", None)
    with pytest.raises(MissingDependencyError) as caught:
        OTLPExporter(OTLPConfig(protocol="grpc"))
    assert caught.value.message.startswith(
        "OTLPConfig.protocol 'grpc' needs the OTLP gRPC exporter: "
        "pip install 'plugwire[otel]' opentelemetry-exporter-otlp-proto-grpc"
    )
    assert caught.value.code == ErrorCode.MISSING_DEPENDENCY
    OTLPExporter(OTLPConfig())  # http/protobuf does not need it


def test_without_the_otel_extra_the_exporter_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'plugwire\[otel\]'"):
        OTLPExporter(OTLPConfig())


def test_importing_plugwire_observe_does_not_load_opentelemetry() -> None:
    code = (
        "import sys, plugwire, plugwire.observe; plugwire.OTLPConfig(); "
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- the mapping


def plugin_metrics(name: str, **changes: Any) -> PluginMetrics:
    values: dict[str, Any] = {
        "name": name,
        "transport": "executable",
        "status": Status.HEALTHY,
        "requests_total": 9,
        "requests_success": 5,
        "requests_failure": 3,
        "requests_cancelled": 1,
        "active_requests": 0,
        "failures_by_code": {1203: 2, 1401: 1},
        "retries": 4,
        "rate_limited": 0,
        "circuit_breaker_rejections": 1,
        "circuit_breaker_trips": 1,
        "circuit_breaker_state": "open",
        "health_checks": 7,
        "health_check_failures": 2,
        "health_check_latency": 0.004,
        "restarts": 1,
        "processes": 2,
        "duration": Histogram(bounds=(0.1, 1.0), counts=(5, 2, 1), sum=3.75, count=8),
        "response_time": 3.75 / 8,
        "error_rate": 3 / 8,
    }
    values.update(changes)
    return PluginMetrics(**values)


def encoded(snapshot: ManagerMetrics) -> dict[str, Any]:
    resource = Resource.create({"service.name": "billing"})
    data = metrics_data(snapshot, resource, InstrumentationScope("plugwire", "1"), start_ns=1_000)
    request = encode_metrics(data)
    (resource_metrics,) = request.resource_metrics
    assert resource_attributes(resource_metrics.resource)["service.name"] == "billing"
    (scope,) = resource_metrics.scope_metrics
    assert scope.scope.name == "plugwire"
    return {metric.name: metric for metric in scope.metrics}


def points(metric: Any) -> dict[tuple[tuple[str, Any], ...], Any]:
    data = getattr(metric, metric.WhichOneof("data"))
    return {tuple(sorted(resource_attributes(p).items())): p for p in data.data_points}


def test_every_metric_of_the_table_is_sent_with_its_type_and_unit() -> None:
    snapshot = ManagerMetrics.of((0.1, 1.0), {"a": plugin_metrics("a")})
    metrics = encoded(snapshot)
    assert sorted(metrics) == sorted(name for name, *_ in METRICS)
    for name, kind, unit, _ in METRICS:
        assert metrics[name].WhichOneof("data") == kind.lower(), name
        assert metrics[name].unit == unit, name


def test_counters_are_cumulative_monotonic_sums_per_plugin_and_transport() -> None:
    snapshot = ManagerMetrics.of(
        (0.1, 1.0), {"a": plugin_metrics("a"), "b": plugin_metrics("b", transport="grpc", requests_total=2)}
    )
    metrics = encoded(snapshot)
    total = metrics["plugin_requests_total"]
    assert total.sum.is_monotonic
    assert total.sum.aggregation_temporality == 2  # CUMULATIVE
    by_plugin = {key: p.as_int for key, p in points(total).items()}
    assert by_plugin == {
        (("plugin", "a"), ("transport", "executable")): 9,
        (("plugin", "b"), ("transport", "grpc")): 2,
    }
    (point,) = [p for k, p in points(metrics["plugin_retries"]).items() if ("plugin", "a") in k]
    assert (point.as_int, point.start_time_unix_nano, point.time_unix_nano) == (4, 1_000, int(snapshot.taken_at * 1e9))
    failures = {key: p.as_int for key, p in points(metrics["plugin_requests_failure_by_code"]).items()}
    assert failures[(("code", 1203), ("plugin", "a"), ("transport", "executable"))] == 2
    assert failures[(("code", 1401), ("plugin", "a"), ("transport", "executable"))] == 1
    assert len(failures) == 4


def test_the_latency_histogram_keeps_its_bounds_counts_sum_and_count_without_a_made_up_min_or_max() -> None:
    metrics = encoded(ManagerMetrics.of((0.1, 1.0), {"a": plugin_metrics("a")}))
    histogram = metrics["plugin_request_duration"].histogram
    assert histogram.aggregation_temporality == 2
    (point,) = histogram.data_points
    assert list(point.explicit_bounds) == [0.1, 1.0]
    assert list(point.bucket_counts) == [5, 2, 1]
    assert (point.sum, point.count) == (3.75, 8)
    assert not point.HasField("min")
    assert not point.HasField("max")


def test_gauges_and_state_sets() -> None:
    snapshot = ManagerMetrics.of(
        (0.1, 1.0),
        {
            "a": plugin_metrics("a", status=Status.DEGRADED, active_requests=3),
            "b": plugin_metrics("b", circuit_breaker_state="disabled"),
        },
    )
    metrics = encoded(snapshot)
    active = {dict(k)["plugin"]: p.as_int for k, p in points(metrics["plugin_active_requests"]).items()}
    assert active == {"a": 3, "b": 0}
    rate = {dict(k)["plugin"]: p.as_double for k, p in points(metrics["plugin_error_rate"]).items()}
    assert rate == {"a": 3 / 8, "b": 3 / 8}
    status = {(dict(k)["plugin"], dict(k)["status"]): p.as_int for k, p in points(metrics["plugin_status"]).items()}
    assert {s for (plugin, s), v in status.items() if plugin == "a" and v == 1} == {"degraded"}
    assert {s for (plugin, s) in status if plugin == "a"} == {s.value for s in Status}
    states = {
        (dict(k)["plugin"], dict(k)["state"]): p.as_int
        for k, p in points(metrics["plugin_circuit_breaker_state"]).items()
    }
    assert states == {("a", "closed"): 0, ("a", "open"): 1, ("a", "half-open"): 0}  # b has no breaker


def test_a_metric_without_points_is_left_out() -> None:
    # No plugin: only the manager's own counts, one point each.
    assert set(encoded(ManagerMetrics.of(DEFAULT_BUCKETS, {}))) == {"config_reloads", "config_reload_failures"}
    quiet = plugin_metrics("a", failures_by_code={}, circuit_breaker_state="disabled")
    metrics = encoded(ManagerMetrics.of((0.1, 1.0), {"a": quiet}))
    assert set(metrics) == {name for name, *_ in METRICS} - {
        "plugin_requests_failure_by_code",
        "plugin_circuit_breaker_state",
    }


# --------------------------------------------------------------------------- lifecycle


async def test_the_snapshot_is_taken_on_the_starting_loop_and_the_export_on_a_worker() -> None:
    loop_thread = threading.get_ident()
    called_on: list[int] = []

    def source() -> ManagerMetrics:
        called_on.append(threading.get_ident())
        return ManagerMetrics.of((0.1, 1.0), {"a": plugin_metrics("a")})

    with OTLPReceiver() as receiver:
        exporter = OTLPExporter(OTLPConfig(receiver.endpoint, interval=0.01))
        await exporter.start(source)
        await asyncio.to_thread(receiver.wait_for_metrics, lambda m: len(m) >= 2 * len(METRICS))
        await exporter.aclose()
    assert len(called_on) >= 3  # two on the timer, one final
    assert set(called_on) == {loop_thread}
    assert exporter.exports == len(called_on)
    assert exporter.export_errors == 0
    assert {path for path, _ in receiver.requests} == {"/v1/metrics"}


async def test_an_exporter_starts_once_and_closes_idempotently() -> None:
    with OTLPReceiver() as receiver:
        exporter = OTLPExporter(OTLPConfig(receiver.endpoint, interval=3600))
        source = lambda: ManagerMetrics.of(DEFAULT_BUCKETS, {})  # noqa: E731
        await exporter.start(source)
        with pytest.raises(ObservabilityError) as caught:
            await exporter.start(source)
        assert caught.value.code == ErrorCode.EXPORTER_ALREADY_REGISTERED
        await exporter.aclose()
        await exporter.aclose()
    assert exporter.exports == 1  # the final export, once
    never_started = OTLPExporter(OTLPConfig())
    await never_started.aclose()
    with pytest.raises(ObservabilityError):
        await never_started.start(source)


async def test_a_snapshot_that_raises_is_a_counted_export_error_not_a_crash() -> None:
    def broken() -> ManagerMetrics:
        raise RuntimeError("snapshot failed")

    with OTLPReceiver() as receiver:
        exporter = OTLPExporter(OTLPConfig(receiver.endpoint, interval=3600))
        await exporter.start(broken)
        await exporter.aclose()
    assert (exporter.exports, exporter.export_errors) == (0, 1)
    assert "snapshot failed" in (exporter.last_error or "")
    assert receiver.requests == []


def test_the_names_are_public() -> None:
    assert plugwire.OTLPExporter is OTLPExporter
    assert plugwire.OTLPConfig is OTLPConfig
    assert "OTLPExporter" in repr(OTLPExporter(OTLPConfig("http://collector:4318")))


def test_the_managers_reload_counts_are_sums_without_attributes() -> None:
    snapshot = msgspec.structs.replace(
        ManagerMetrics.of(DEFAULT_BUCKETS, {}), config_reloads=2, config_reload_failures=1
    )
    metrics = encoded(snapshot)
    for name, value in (("config_reloads", 2), ("config_reload_failures", 1)):
        [point] = metrics[name].sum.data_points
        assert (point.as_int or point.as_double, list(point.attributes)) == (value, [])
        assert metrics[name].sum.is_monotonic
