"""The Prometheus exporter alone: its config's rules, the series it makes of one snapshot, and
where that snapshot is taken (always on the manager's loop; the last one when that loop is
gone or stuck), over a hand-made metrics source instead of a manager."""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import plugwire
from plugwire import ConfigError, PrometheusConfig, PrometheusExporter, Status
from plugwire._observe.prometheus import PROMETHEUS_EXTRA_HINT
from plugwire._observe.prometheus_collector import SERIES
from plugwire.errors import ErrorCode, ExporterError, MissingDependencyError, ObservabilityError
from plugwire.observe import Histogram, ManagerMetrics, PluginMetrics

pytestmark = pytest.mark.timeout(30)

BOUNDS = (0.01, 0.1, 1.0)


def plugin_metrics(name: str = "echo", **fields: Any) -> PluginMetrics:
    values: dict[str, Any] = {
        "name": name,
        "transport": "executable",
        "status": Status.HEALTHY,
        "requests_total": 0,
        "requests_success": 0,
        "requests_failure": 0,
        "requests_cancelled": 0,
        "active_requests": 0,
        "failures_by_code": {},
        "retries": 0,
        "rate_limited": 0,
        "circuit_breaker_rejections": 0,
        "circuit_breaker_trips": 0,
        "circuit_breaker_state": "closed",
        "health_checks": 0,
        "health_check_failures": 0,
        "health_check_latency": 0.0,
        "restarts": 0,
        "processes": 0,
        "duration": Histogram(bounds=BOUNDS, counts=(0, 0, 0, 0)),
        "response_time": 0.0,
        "error_rate": 0.0,
    }
    values.update(fields)
    return PluginMetrics(**values)


def snapshot(*plugins: PluginMetrics) -> ManagerMetrics:
    return ManagerMetrics.of(BOUNDS, {plugin.name: plugin for plugin in plugins})


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of the registry's exposition, parsed with prometheus-client's own parser:
    sample name -> {sorted labels: value}."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


class CountingSource:
    """A metrics source that returns a given snapshot and records the threads it ran on."""

    def __init__(self, value: ManagerMetrics) -> None:
        self.value = value
        self.threads: list[int] = []
        self.error: Exception | None = None

    def __call__(self) -> ManagerMetrics:
        self.threads.append(threading.get_ident())
        if self.error is not None:
            raise self.error
        return self.value


class LoopThread:
    """An event loop running in a thread of its own: a manager's loop, seen from a scrape."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-manager-loop")
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.stop()
    runner.loop.close()


# --------------------------------------------------------------------------- the config
def test_the_default_config_has_no_server_a_loopback_address_and_the_plugwire_prefix() -> None:
    config = PrometheusConfig()
    assert (config.namespace, config.subsystem, config.port, config.address) == ("plugwire", "", None, "127.0.0.1")
    assert config.prefix == "plugwire_"


@pytest.mark.parametrize(
    ("namespace", "subsystem", "prefix"),
    [("myapp", "plugins", "myapp_plugins_"), ("", "plugins", "plugins_"), ("", "", ""), ("_x1", "", "_x1_")],
)
def test_the_prefix_joins_namespace_and_subsystem(namespace: str, subsystem: str, prefix: str) -> None:
    assert PrometheusConfig(namespace=namespace, subsystem=subsystem).prefix == prefix


@pytest.mark.parametrize(
    ("fields", "path", "code"),
    [
        ({"namespace": "my-app"}, "PrometheusConfig.namespace", ErrorCode.CONFIG_INVALID_VALUE),
        ({"namespace": "1app"}, "PrometheusConfig.namespace", ErrorCode.CONFIG_INVALID_VALUE),
        ({"namespace": "__app"}, "PrometheusConfig.namespace", ErrorCode.CONFIG_INVALID_VALUE),
        ({"namespace": "app:x"}, "PrometheusConfig.namespace", ErrorCode.CONFIG_INVALID_VALUE),
        ({"namespace": None}, "PrometheusConfig.namespace", ErrorCode.CONFIG_WRONG_TYPE),
        ({"subsystem": "plug ins"}, "PrometheusConfig.subsystem", ErrorCode.CONFIG_INVALID_VALUE),
        ({"subsystem": 7}, "PrometheusConfig.subsystem", ErrorCode.CONFIG_WRONG_TYPE),
        ({"port": -1}, "PrometheusConfig.port", ErrorCode.CONFIG_INVALID_VALUE),
        ({"port": 65536}, "PrometheusConfig.port", ErrorCode.CONFIG_INVALID_VALUE),
        ({"port": "9090"}, "PrometheusConfig.port", ErrorCode.CONFIG_WRONG_TYPE),
        ({"port": 9090.0}, "PrometheusConfig.port", ErrorCode.CONFIG_WRONG_TYPE),
        ({"port": True}, "PrometheusConfig.port", ErrorCode.CONFIG_WRONG_TYPE),
        ({"address": ""}, "PrometheusConfig.address", ErrorCode.CONFIG_INVALID_VALUE),
        ({"address": "http://0.0.0.0"}, "PrometheusConfig.address", ErrorCode.CONFIG_INVALID_VALUE),
        ({"address": "127.0.0.1:9090"}, "PrometheusConfig.address", ErrorCode.CONFIG_INVALID_VALUE),
        ({"address": "[::1]"}, "PrometheusConfig.address", ErrorCode.CONFIG_INVALID_VALUE),
        ({"address": "my host"}, "PrometheusConfig.address", ErrorCode.CONFIG_INVALID_VALUE),
        ({"address": 127}, "PrometheusConfig.address", ErrorCode.CONFIG_WRONG_TYPE),
        ({"snapshot_timeout": 0}, "PrometheusConfig.snapshot_timeout", ErrorCode.CONFIG_INVALID_VALUE),
        ({"snapshot_timeout": -1.0}, "PrometheusConfig.snapshot_timeout", ErrorCode.CONFIG_INVALID_VALUE),
        ({"snapshot_timeout": math.nan}, "PrometheusConfig.snapshot_timeout", ErrorCode.CONFIG_INVALID_VALUE),
        ({"snapshot_timeout": math.inf}, "PrometheusConfig.snapshot_timeout", ErrorCode.CONFIG_INVALID_VALUE),
        ({"snapshot_timeout": "5s"}, "PrometheusConfig.snapshot_timeout", ErrorCode.CONFIG_WRONG_TYPE),
    ],
)
def test_a_bad_config_value_is_a_config_error_naming_its_field(fields: dict[str, Any], path: str, code: int) -> None:
    with pytest.raises(ConfigError) as caught:
        PrometheusConfig(**fields)
    assert caught.value.message.startswith(f"{path}: "), caught.value.message
    assert caught.value.code == code


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "::1", "localhost", "metrics.internal", "host-1."])
def test_ip_addresses_and_host_names_are_accepted(address: str) -> None:
    assert PrometheusConfig(address=address, port=0).address == address


def test_port_zero_means_any_free_port_and_none_means_no_server() -> None:
    assert PrometheusConfig(port=0).port == 0
    assert PrometheusConfig(port=65535).port == 65535
    assert PrometheusConfig(port=None).port is None


def test_an_exporter_refuses_what_is_not_a_config_or_a_registry() -> None:
    with pytest.raises(ConfigError, match="expected a PrometheusConfig, got dict") as caught:
        PrometheusExporter({"port": 9090})  # type: ignore[arg-type]
    assert caught.value.code == ErrorCode.CONFIG_WRONG_TYPE
    with pytest.raises(ConfigError, match=r"registry must be a prometheus_client\.CollectorRegistry"):
        PrometheusExporter(registry=object())  # type: ignore[arg-type]


def test_without_prometheus_client_an_exporter_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'plugwire\[prometheus\]'") as caught:
        PrometheusExporter()
    assert caught.value.code == ErrorCode.MISSING_DEPENDENCY
    assert isinstance(caught.value, ImportError)
    assert PROMETHEUS_EXTRA_HINT in str(caught.value)
    assert PrometheusConfig(port=1).port == 1  # the config needs no extra


def test_plugwire_observe_imports_without_loading_prometheus_client() -> None:
    code = "import sys, plugwire.observe; plugwire.PrometheusConfig(); print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "False"


def test_the_public_names_are_the_same_objects_everywhere() -> None:
    assert plugwire.PrometheusExporter is plugwire.observe.PrometheusExporter
    assert plugwire.PrometheusConfig is plugwire.observe.PrometheusConfig
    assert isinstance(PrometheusExporter(), plugwire.observe.MetricsExporter)


# --------------------------------------------------------------------------- the series
async def test_every_series_of_a_snapshot_is_exposed_with_its_labels_and_values() -> None:
    busy = plugin_metrics(
        "echo",
        status=Status.DEGRADED,
        requests_total=12,
        requests_success=7,
        requests_failure=4,
        requests_cancelled=1,
        failures_by_code={1204: 1, 1203: 2, 1401: 1},
        retries=3,
        rate_limited=0,
        circuit_breaker_rejections=1,
        circuit_breaker_trips=1,
        circuit_breaker_state="half-open",
        health_checks=9,
        health_check_failures=2,
        health_check_latency=0.125,
        restarts=1,
        processes=2,
        duration=Histogram(bounds=BOUNDS, counts=(5, 3, 2, 1), sum=4.5, count=11),
        response_time=4.5 / 11,
        error_rate=4 / 11,
    )
    idle = plugin_metrics("calc", transport="in-process", circuit_breaker_state="disabled", failures_by_code={9999: 1})
    exporter = PrometheusExporter(PrometheusConfig(namespace="myapp", subsystem="plugins"))
    await exporter.start(CountingSource(snapshot(busy, idle)))
    try:
        samples = scrape(exporter.registry)
    finally:
        await exporter.aclose()

    echo = labels(plugin="echo", transport="executable")
    calc = labels(plugin="calc", transport="in-process")
    p = "myapp_plugins_"
    assert samples[p + "plugin_requests_total"] == {echo: 12, calc: 0}
    assert samples[p + "plugin_requests_success_total"] == {echo: 7, calc: 0}
    assert samples[p + "plugin_requests_failure_total"] == {
        labels(plugin="echo", transport="executable", code="1203", error="execution_failed"): 2,
        labels(plugin="echo", transport="executable", code="1204", error="timeout"): 1,
        labels(plugin="echo", transport="executable", code="1401", error="circuit_open"): 1,
        labels(plugin="calc", transport="in-process", code="9999", error="unknown"): 1,
    }
    assert samples[p + "plugin_requests_cancelled_total"][echo] == 1
    assert samples[p + "plugin_request_duration_seconds_bucket"] == {
        **{labels(plugin="echo", transport="executable", le=le): n for le, n in [("0.01", 5), ("0.1", 8), ("1.0", 10)]},
        labels(plugin="echo", transport="executable", le="+Inf"): 11,
        **{labels(plugin="calc", transport="in-process", le=le): 0 for le in ("0.01", "0.1", "1.0", "+Inf")},
    }
    assert samples[p + "plugin_request_duration_seconds_count"] == {echo: 11, calc: 0}
    assert samples[p + "plugin_request_duration_seconds_sum"] == {echo: 4.5, calc: 0}
    assert samples[p + "plugin_circuit_breaker_trips_total"][echo] == 1
    assert samples[p + "plugin_health_check_failures_total"][echo] == 2
    assert {key: value for key, value in samples[p + "plugin_status"].items() if dict(key)["plugin"] == "echo"} == {
        labels(plugin="echo", transport="executable", status=status.value): float(status is Status.DEGRADED)
        for status in Status
    }
    assert samples[p + "plugin_response_time_seconds"][echo] == pytest.approx(4.5 / 11)
    assert samples[p + "plugin_error_rate"][echo] == pytest.approx(4 / 11)
    assert samples[p + "plugin_active_requests"] == {echo: 0, calc: 0}
    assert samples[p + "plugin_retries_total"][echo] == 3
    assert samples[p + "plugin_rate_limited_total"][echo] == 0
    assert samples[p + "plugin_circuit_breaker_rejections_total"][echo] == 1
    states = samples[p + "plugin_circuit_breaker_state"]
    assert [dict(key)["state"] for key, value in states.items() if value == 1] == ["half-open", "disabled"]
    assert states[labels(plugin="calc", transport="in-process", state="disabled")] == 1
    assert samples[p + "plugin_health_checks_total"][echo] == 9
    assert samples[p + "plugin_health_check_latency_seconds"][echo] == 0.125
    assert samples[p + "plugin_restarts_total"][echo] == 1
    assert samples[p + "plugin_processes"] == {echo: 2, calc: 0}
    assert samples[p + "metrics_snapshot_timestamp_seconds"][()] > 0


async def test_the_managers_reload_counts_are_series_without_labels() -> None:
    reloaded = msgspec.structs.replace(snapshot(plugin_metrics()), config_reloads=3, config_reload_failures=1)
    exporter = PrometheusExporter(PrometheusConfig())
    await exporter.start(CountingSource(reloaded))
    try:
        samples = scrape(exporter.registry)
    finally:
        await exporter.aclose()
    assert samples["plugwire_config_reloads_total"] == {(): 3}
    assert samples["plugwire_config_reload_failures_total"] == {(): 1}


async def test_the_series_table_lists_exactly_what_a_scrape_shows() -> None:
    exporter = PrometheusExporter(PrometheusConfig(namespace="", subsystem=""))
    await exporter.start(CountingSource(snapshot(plugin_metrics(failures_by_code={1203: 1}))))
    try:
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(exporter.registry).decode())}
    finally:
        await exporter.aclose()
    # The parser names a counter's family without its `_total`.
    expected = {s.name.removesuffix("_total") if s.kind == "counter" else s.name: s for s in SERIES}
    assert set(families) == set(expected)
    for name, family in families.items():
        series = expected[name]
        assert family.type == series.kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(series.labels), name
    readme = {s.readme for s in SERIES} - {""}
    assert readme == {
        "plugin_requests_total",
        "plugin_requests_success",
        "plugin_requests_failure",
        "plugin_request_duration",
        "plugin_circuit_breaker_trips",
        "plugin_health_check_failures",
        "plugin_status",
        "plugin_response_time",
        "plugin_error_rate",
        "plugin_active_requests",
    }


async def test_before_start_and_after_close_the_registry_holds_nothing_of_the_exporter() -> None:
    exporter = PrometheusExporter()
    assert generate_latest(exporter.registry) == b""
    source = CountingSource(snapshot(plugin_metrics()))
    await exporter.start(source)
    assert b"plugwire_plugin_requests_total" in generate_latest(exporter.registry)
    await exporter.aclose()
    await exporter.aclose()  # idempotent
    assert generate_latest(exporter.registry) == b""
    assert len(source.threads) == 1  # registering took no snapshot; the one scrape did


async def test_two_exporters_with_the_same_names_clash_in_one_registry_but_not_in_their_own() -> None:
    shared = CollectorRegistry()
    first = PrometheusExporter(registry=shared)
    second = PrometheusExporter(registry=shared)
    other = PrometheusExporter(PrometheusConfig(subsystem="second"), registry=shared)
    own = PrometheusExporter()
    source = CountingSource(snapshot(plugin_metrics()))
    await first.start(source)
    try:
        with pytest.raises(ExporterError, match="clash with a collector already in the registry") as caught:
            await second.start(source)
        assert caught.value.code == ErrorCode.EXPORTER_START_FAILED
        await other.start(source)
        await own.start(source)
        text = generate_latest(shared).decode()
        assert "plugwire_plugin_requests_total{" in text
        assert "plugwire_second_plugin_requests_total{" in text
    finally:
        for exporter in (first, second, other, own):
            await exporter.aclose()


async def test_an_exporter_serves_one_manager_at_a_time() -> None:
    exporter = PrometheusExporter()
    source = CountingSource(snapshot(plugin_metrics()))
    await exporter.start(source)
    try:
        with pytest.raises(ObservabilityError, match="serves a manager already") as caught:
            await exporter.start(source)
        assert caught.value.code == ErrorCode.EXPORTER_ALREADY_REGISTERED
    finally:
        await exporter.aclose()
    await exporter.start(source)  # closed, it may serve again
    await exporter.aclose()


# --------------------------------------------------------------------------- where the snapshot is taken
async def test_a_scrape_on_the_managers_loop_takes_the_snapshot_there_without_waiting() -> None:
    source = CountingSource(snapshot(plugin_metrics(requests_total=3)))
    exporter = PrometheusExporter(PrometheusConfig(snapshot_timeout=30))
    await exporter.start(source)
    try:
        # Synchronously, on this loop: handing the snapshot to the loop and waiting would
        # deadlock until the 30 s bound (and the test's timeout) instead.
        assert scrape(exporter.registry)["plugwire_plugin_requests_total"] == {
            labels(plugin="echo", transport="executable"): 3
        }
    finally:
        await exporter.aclose()
    assert source.threads == [threading.get_ident()]


def test_a_scrape_from_another_thread_takes_its_snapshot_on_the_managers_loop(loop_thread: LoopThread) -> None:
    source = CountingSource(snapshot(plugin_metrics(requests_total=5)))
    exporter = PrometheusExporter()
    loop_thread.run(exporter.start(source))
    try:
        for _ in range(2):
            samples = scrape(exporter.registry)
            assert samples["plugwire_plugin_requests_total"] == {labels(plugin="echo", transport="executable"): 5}
    finally:
        loop_thread.run(exporter.aclose())
    assert source.threads == [loop_thread.thread.ident] * 2


def test_a_stopped_or_closed_loop_gets_the_last_snapshot_served(loop_thread: LoopThread) -> None:
    source = CountingSource(snapshot(plugin_metrics(requests_total=5)))
    exporter = PrometheusExporter()
    loop_thread.run(exporter.start(source))
    first = generate_latest(exporter.registry)
    loop_thread.stop()
    assert generate_latest(exporter.registry) == first
    loop_thread.loop.close()
    assert generate_latest(exporter.registry) == first
    assert len(source.threads) == 1


def test_a_loop_stopped_before_any_scrape_serves_nothing_rather_than_hang(loop_thread: LoopThread) -> None:
    source = CountingSource(snapshot(plugin_metrics()))
    exporter = PrometheusExporter()
    loop_thread.run(exporter.start(source))
    loop_thread.stop()
    assert generate_latest(exporter.registry) == b""
    assert source.threads == []


def test_a_blocked_loop_gets_the_last_snapshot_served_after_the_bound(
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    source = CountingSource(snapshot(plugin_metrics(requests_total=5)))
    exporter = PrometheusExporter(PrometheusConfig(snapshot_timeout=0.2))
    loop_thread.run(exporter.start(source))
    first = generate_latest(exporter.registry)
    release = threading.Event()
    blocked = threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(20)

    loop_thread.loop.call_soon_threadsafe(block)
    try:
        assert blocked.wait(10)
        with caplog.at_level(logging.WARNING, logger="plugwire.observe"):
            assert generate_latest(exporter.registry) == first
        assert "did not take a snapshot within 0.2s; serving the last one" in caplog.text
    finally:
        release.set()
    loop_thread.run(exporter.aclose())
    assert len(source.threads) == 1  # the scrape that gave up took nothing later either


def test_a_failing_snapshot_is_logged_and_the_last_one_served(
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    source = CountingSource(snapshot(plugin_metrics(requests_total=5)))
    exporter = PrometheusExporter()
    loop_thread.run(exporter.start(source))
    first = generate_latest(exporter.registry)
    source.error = RuntimeError("a counter went missing")
    with caplog.at_level(logging.ERROR, logger="plugwire.observe"):
        assert generate_latest(exporter.registry) == first
    assert "the metrics snapshot failed; serving the last one" in caplog.text
    assert "a counter went missing" in caplog.text
    loop_thread.run(exporter.aclose())


# --------------------------------------------------------------------------- mounted in an app
@pytest.fixture
async def started() -> AsyncIterator[PrometheusExporter]:
    exporter = PrometheusExporter()
    await exporter.start(CountingSource(snapshot(plugin_metrics(requests_total=4))))
    yield exporter
    await exporter.aclose()


async def call_asgi(app: Callable[..., Any], path: str = "/metrics") -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"accept", b"text/plain")],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, body = sent
    assert start["type"] == "http.response.start"
    assert body["type"] == "http.response.body"
    return start["status"], dict(start["headers"]), body["body"]


async def test_the_asgi_app_serves_the_series_on_the_managers_loop(started: PrometheusExporter) -> None:
    status, headers, body = await call_asgi(started.asgi_app())
    assert status == 200
    assert headers[b"Content-Type"].startswith(b"text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["plugwire_plugin_requests"].samples[0].value == 4


async def test_the_wsgi_app_serves_the_series_from_a_real_wsgi_server(started: PrometheusExporter) -> None:
    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, started.wsgi_app(), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-wsgi")
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        # From a thread: the server's thread hands the snapshot to this loop, which must be free.
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["plugwire_plugin_requests"].samples[0].value == 4
