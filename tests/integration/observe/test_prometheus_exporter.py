"""The Prometheus exporter on a running manager: its real HTTP endpoint scraped and parsed
with prometheus-client's own parser after a known mix of calls (successes, failures by code,
a timeout, a breaker trip, failed health checks), in-process plugins and a plugin process;
a port in use; the server gone and its port free once the manager shuts down."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

import plugwire
from plugwire import ExecutionContext, HealthStatus, PrometheusConfig, PrometheusExporter, Status
from plugwire.errors import ErrorCode, ExporterError
from tests.support.echo_types import Req, Resp
from tests.support.procguard import python_plugin

pytestmark = [pytest.mark.usefixtures("no_leaks"), pytest.mark.timeout(60)]

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


class Scripted(plugwire.Plugin[Req, Resp]):
    """Echoes; raises on "fail"; never answers "hang"; its health check raises when sick."""

    def __init__(self, name: str, *, sick: bool = False) -> None:
        self.name = name
        self.sick = sick
        self.hanging = asyncio.Semaphore(0)  # released by each call that starts to hang

    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name=self.name, version="1.0.0")

    async def execute(self, ctx: ExecutionContext, request: Req) -> Resp:
        if request.op == "fail":
            raise RuntimeError(request.text)
        if request.op == "hang":
            self.hanging.release()
            await asyncio.Event().wait()
        return Resp(text=request.text)

    async def health(self) -> HealthStatus:
        if self.sick:
            raise RuntimeError("database unreachable")
        return HealthStatus(status=Status.HEALTHY)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


async def scrape(url: str) -> Samples:
    """GET the endpoint from a thread (the server's thread hands the snapshot to this loop,
    which must not be blocked by the request) and parse it."""
    samples: Samples = {}
    for family in text_string_to_metric_families(await asyncio.to_thread(fetch, url)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def by_plugin(samples: Samples, name: str, **fixed: str) -> dict[str, float]:
    """One series' value per plugin (the series' other labels fixed as given)."""
    result = {}
    for key, value in samples[name].items():
        labels = dict(key)
        if all(labels.get(k) == v for k, v in fixed.items()):
            result[labels["plugin"]] = value
    return result


def builder() -> plugwire.ManagerBuilder[Req, Resp]:
    return (
        plugwire.simple(Req, Resp)
        .with_retry(max_retries=0)  # one attempt per call: counts are exact
        .with_circuit_breaker(failure_threshold=100, recovery_timeout=3600)
        .with_health_check(interval=3600, failure_limit=10)  # checks only when asked
    )


async def test_a_scrape_counts_a_known_mix_of_calls_by_plugin_code_and_transport() -> None:
    build = builder()
    tripping = msgspec.structs.replace(
        build.plugin_config("breaker"),
        circuit_breaker=plugwire.CircuitBreakerConfig(
            failure_threshold=2, min_request_threshold=2, recovery_timeout=3600
        ),
    )
    build = (
        build.with_plugin("echo", Scripted("echo"))
        .with_plugin("flaky", Scripted("flaky"))
        .with_plugin("slow", Scripted("slow"))
        .with_plugin("breaker", Scripted("breaker"), tripping)
        .with_plugin("sick", Scripted("sick", sick=True))
        .with_plugin("proc", python_plugin("echo_plugin.py"))
    )
    exporter = PrometheusExporter(PrometheusConfig(namespace="myapp", subsystem="plugins", port=0))
    async with build.build() as manager:
        await manager.register_metrics_exporter(exporter)
        assert exporter.url == f"http://127.0.0.1:{exporter.port}/metrics"

        async def fails(name: str, request: Req, code: int, context: ExecutionContext | None = None) -> None:
            with pytest.raises(plugwire.PluginError) as caught:
                await manager.execute(name, request, context)
            assert caught.value.code == code

        for _ in range(3):
            await manager.execute("echo", Req(text="hi"))
        await manager.execute("flaky", Req(text="ok"))
        for _ in range(2):
            await fails("flaky", Req(op="fail", text="no"), ErrorCode.EXECUTION_FAILED)
        await fails("slow", Req(op="hang"), ErrorCode.TIMEOUT, ExecutionContext(timeout=0.05))
        for _ in range(2):
            await fails("breaker", Req(op="fail"), ErrorCode.EXECUTION_FAILED)
        await fails("breaker", Req(), ErrorCode.CIRCUIT_OPEN)  # tripped: refused
        for _ in range(2):
            await manager.execute("proc", Req(text="from a process"))
        await fails("proc", Req(op="fail", text="no"), ErrorCode.EXECUTION_FAILED)
        before = {name: (p.health_checks, p.health_check_failures) for name, p in manager.get_metrics().plugins.items()}
        for _ in range(2):
            await manager.health()

        samples = await scrape(exporter.url)
        snapshot = manager.get_metrics()

    p = "myapp_plugins_"
    assert by_plugin(samples, p + "plugin_requests_total") == {
        "echo": 3,
        "flaky": 3,
        "slow": 1,
        "breaker": 3,
        "sick": 0,
        "proc": 3,
    }
    assert by_plugin(samples, p + "plugin_requests_success_total") == {
        "echo": 3,
        "flaky": 1,
        "slow": 0,
        "breaker": 0,
        "sick": 0,
        "proc": 2,
    }
    failures = {
        (dict(key)["plugin"], dict(key)["code"], dict(key)["error"]): value
        for key, value in samples[p + "plugin_requests_failure_total"].items()
    }
    assert failures == {
        ("flaky", "1203", "execution_failed"): 2,
        ("slow", "1204", "timeout"): 1,
        ("breaker", "1203", "execution_failed"): 2,
        ("breaker", "1401", "circuit_open"): 1,
        ("proc", "1203", "execution_failed"): 1,
    }
    assert by_plugin(samples, p + "plugin_request_duration_seconds_count") == {
        "echo": 3,
        "flaky": 3,
        "slow": 1,
        "breaker": 3,
        "sick": 0,
        "proc": 3,
    }
    assert by_plugin(samples, p + "plugin_request_duration_seconds_bucket", le="+Inf")["proc"] == 3
    assert by_plugin(samples, p + "plugin_request_duration_seconds_sum")["slow"] >= 0.05  # it waited for its timeout
    assert by_plugin(samples, p + "plugin_circuit_breaker_trips_total") == {
        "echo": 0,
        "flaky": 0,
        "slow": 0,
        "breaker": 1,
        "sick": 0,
        "proc": 0,
    }
    assert by_plugin(samples, p + "plugin_circuit_breaker_rejections_total")["breaker"] == 1
    assert by_plugin(samples, p + "plugin_circuit_breaker_state", state="open") == {
        "echo": 0,
        "flaky": 0,
        "slow": 0,
        "breaker": 1,
        "sick": 0,
        "proc": 0,
    }
    health_failures = by_plugin(samples, p + "plugin_health_check_failures_total")
    assert health_failures == {name: failed + (2 if name == "sick" else 0) for name, (_, failed) in before.items()}
    assert health_failures["sick"] == 2
    checks = by_plugin(samples, p + "plugin_health_checks_total")
    assert checks == {name: made + 2 for name, (made, _) in before.items()}
    assert by_plugin(samples, p + "plugin_status", status="degraded") == {
        "echo": 0,
        "flaky": 0,
        "slow": 0,
        "breaker": 0,
        "sick": 1,
        "proc": 0,
    }
    assert by_plugin(samples, p + "plugin_error_rate")["flaky"] == pytest.approx(2 / 3)
    assert by_plugin(samples, p + "plugin_response_time_seconds")["echo"] > 0
    assert set(by_plugin(samples, p + "plugin_active_requests").values()) == {0}
    transports = {dict(key)["plugin"]: dict(key)["transport"] for key in samples[p + "plugin_requests_total"]}
    assert transports == dict.fromkeys(("echo", "flaky", "slow", "breaker", "sick"), "in-process") | {
        "proc": "executable"
    }
    processes = by_plugin(samples, p + "plugin_processes")
    assert processes["proc"] == snapshot.plugins["proc"].processes >= 1
    assert {processes[name] for name in processes if name != "proc"} == {0}
    assert by_plugin(samples, p + "plugin_restarts_total")["proc"] == 0
    assert samples[p + "metrics_snapshot_timestamp_seconds"][()] <= snapshot.taken_at


async def test_active_requests_show_calls_in_flight_during_the_scrape() -> None:
    exporter = PrometheusExporter(PrometheusConfig(port=0))
    slow = Scripted("slow")
    async with builder().with_plugin("slow", slow).build() as manager:
        await manager.register_metrics_exporter(exporter)
        calls = [asyncio.create_task(manager.execute("slow", Req(op="hang"))) for _ in range(3)]
        for _ in calls:
            await slow.hanging.acquire()
        assert exporter.url is not None
        samples = await scrape(exporter.url)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        after = await scrape(exporter.url)
    assert by_plugin(samples, "plugwire_plugin_active_requests") == {"slow": 3}
    assert by_plugin(samples, "plugwire_plugin_requests_total") == {"slow": 3}
    assert by_plugin(after, "plugwire_plugin_active_requests") == {"slow": 0}
    assert by_plugin(after, "plugwire_plugin_requests_cancelled_total") == {"slow": 3}


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def can_listen_on(port: int) -> bool:
    """Whether a server may listen on the port now (SO_REUSEADDR, as every server sets: the
    connections a scrape left in TIME_WAIT do not count, a listening socket does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            again.bind(("127.0.0.1", port))
            again.listen()
        except OSError:
            return False
    return True


async def test_a_port_in_use_is_refused_at_registration_with_2103_naming_it() -> None:
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        exporter = PrometheusExporter(PrometheusConfig(port=port))
        async with builder().with_plugin("echo", Scripted("echo")).build() as manager:
            with pytest.raises(ExporterError) as caught:
                await manager.register_metrics_exporter(exporter)
            assert caught.value.code == ErrorCode.EXPORTER_ADDRESS_IN_USE
            assert f"127.0.0.1:{port} is in use" in caught.value.message
            assert caught.value.details == {"address": "127.0.0.1", "port": port}
            assert exporter.port is None
            # It left nothing behind: the same exporter starts on a free port.
            retry = PrometheusExporter(PrometheusConfig(port=0))
            await manager.register_metrics_exporter(retry)
            assert retry.url is not None
            assert "plugwire_plugin_requests_total" in await asyncio.to_thread(fetch, retry.url)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("plugwire-prometheus")]


async def test_an_address_that_cannot_be_listened_on_is_an_exporter_error() -> None:
    exporter = PrometheusExporter(PrometheusConfig(address="192.0.2.1", port=0))  # TEST-NET-1: not ours
    async with builder().with_plugin("echo", Scripted("echo")).build() as manager:
        with pytest.raises(ExporterError, match=r"cannot listen on 192\.0\.2\.1:0") as caught:
            await manager.register_metrics_exporter(exporter)
    assert caught.value.code == ErrorCode.EXPORTER_START_FAILED


async def test_the_exporter_stops_with_the_manager_and_its_port_is_free_again() -> None:
    exporter = PrometheusExporter(PrometheusConfig(port=0))
    async with builder().with_plugin("echo", Scripted("echo")).build() as manager:
        await manager.register_metrics_exporter(exporter)
        port, url = exporter.port, exporter.url
        assert port is not None
        assert url is not None
        await manager.execute("echo", Req(text="hi"))
        assert by_plugin(await scrape(url), "plugwire_plugin_requests_total") == {"echo": 1}
        names = [t.name for t in threading.enumerate()]
        assert f"plugwire-prometheus-{port}" in names
        assert not can_listen_on(port)
    assert exporter.port is None
    assert exporter.url is None
    assert f"plugwire-prometheus-{port}" not in [t.name for t in threading.enumerate()]
    assert can_listen_on(port)  # free: the server's socket is closed
    with pytest.raises(OSError):
        await asyncio.to_thread(fetch, url)


def test_a_blocking_manager_is_scraped_from_another_thread_through_its_loop() -> None:
    exporter = PrometheusExporter(PrometheusConfig(port=0))
    with builder().with_plugin("echo", Scripted("echo")).build_blocking() as manager:
        manager.register_metrics_exporter(exporter)
        manager.execute("echo", Req(text="hi"))
        assert exporter.url is not None
        text = fetch(exporter.url)
        port = exporter.port
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert [s.value for s in families["plugwire_plugin_requests"].samples] == [1]
    assert port is not None
    assert can_listen_on(port)


async def test_the_apps_serve_a_running_manager(unused_tcp_port: int) -> None:
    exporter = PrometheusExporter()  # no server of its own
    async with builder().with_plugin("echo", Scripted("echo")).build() as manager:
        asgi: Callable[..., Any] = exporter.asgi_app()
        await manager.register_metrics_exporter(exporter)
        assert exporter.url is None
        await manager.execute("echo", Req(text="hi"))
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"", "headers": []}
        await asgi(scope, receive, send)
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
        started: list[str] = []
        wsgi_body = await asyncio.to_thread(
            lambda: b"".join(exporter.wsgi_app()(environ, lambda status, headers: started.append(status)))
        )
    assert sent[0]["status"] == 200
    assert started == ["200 OK"]
    for body in (sent[1]["body"], wsgi_body):
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert [s.value for s in families["plugwire_plugin_requests"].samples] == [1]
