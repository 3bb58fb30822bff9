"""`get_metrics()`: what the manager counts per plugin, when metrics are on, and exporters' lifecycle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import plugwire
from plugwire import (
    AsyncPluginManager,
    CircuitBreakerConfig,
    ExecutionContext,
    HealthStatus,
    ManagerConfig,
    MetricsConfig,
    Plugin,
    PluginConfig,
    PluginInfo,
    RateLimitConfig,
    RetryConfig,
    Status,
)
from plugwire.errors import ErrorCode, ExporterError, MetricsDisabledError, ObservabilityError
from plugwire.observe import ManagerMetrics, MetricsSource
from plugwire.testing import FakeClock

ON = ManagerConfig(metrics=MetricsConfig(enabled=True))


class Echo(Plugin[str, str]):
    """Echoes; "fail" raises (1203), "hang" waits until released; health fails on demand."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.sick = False

    def info(self) -> PluginInfo:
        return PluginInfo(name="echo")

    async def execute(self, ctx: ExecutionContext, request: str) -> str:
        if request == "fail":
            raise RuntimeError("plugin bug")
        if request == "unreachable":
            raise plugwire.TransportError("backend unreachable", retryable=True)
        if request == "hang":
            self.entered.set()
            await self.release.wait()
        return request

    async def health(self) -> HealthStatus:
        if self.sick:
            raise RuntimeError("database down")
        return HealthStatus(status=Status.HEALTHY)


async def test_metrics_are_off_by_default_and_reading_them_says_how_to_turn_them_on() -> None:
    async with AsyncPluginManager(str, str) as manager:
        await manager.register(Echo(), name="echo")
        assert not manager.metrics_enabled
        with pytest.raises(MetricsDisabledError) as caught:
            manager.get_metrics()
        assert caught.value.code == ErrorCode.METRICS_DISABLED == 2101
        assert "with_metrics()" in caught.value.message


async def test_successes_failures_by_code_and_the_histogram_add_up() -> None:
    async with AsyncPluginManager(str, str, ON) as manager:
        await manager.register(Echo(), name="echo")
        for _ in range(3):
            assert await manager.execute("echo", "hi") == "hi"
        for _ in range(2):
            with pytest.raises(plugwire.ExecutionError):
                await manager.execute("echo", "fail")
        with pytest.raises(plugwire.errors.RequestValidationError):
            await manager.execute("echo", 42)  # type: ignore[arg-type]
        metrics = manager.get_metrics()
    plugin = metrics.plugins["echo"]
    assert (plugin.requests_total, plugin.requests_success, plugin.requests_failure) == (6, 3, 3)
    assert plugin.failures_by_code == {1203: 2, 1205: 1}
    assert plugin.duration.count == 6
    assert plugin.duration.sum > 0
    assert plugin.response_time == pytest.approx(plugin.duration.sum / 6)
    assert plugin.error_rate == pytest.approx(0.5)
    assert (plugin.name, plugin.transport, plugin.status) == ("echo", "in-process", Status.HEALTHY)
    assert plugin.circuit_breaker_state == "closed"
    assert plugin.processes == 0
    # The README's manager-level totals are the sums over plugins.
    assert (metrics.requests_total, metrics.requests_success, metrics.requests_failure) == (6, 3, 3)
    assert metrics.request_duration == plugin.duration


async def test_calls_in_flight_are_active_and_count_in_the_total() -> None:
    plugin = Echo()
    async with AsyncPluginManager(str, str, ON) as manager:
        await manager.register(plugin, name="echo")
        call = asyncio.create_task(manager.execute("echo", "hang"))
        await plugin.entered.wait()
        during = manager.get_metrics().plugins["echo"]
        assert (during.active_requests, during.requests_total, during.requests_success) == (1, 1, 0)
        plugin.release.set()
        assert await call == "hang"
        after = manager.get_metrics().plugins["echo"]
        assert (after.active_requests, after.requests_total, after.requests_success) == (0, 1, 1)


async def test_a_cancelled_call_is_counted_as_cancelled_not_failed() -> None:
    plugin = Echo()
    async with AsyncPluginManager(str, str, ON) as manager:
        await manager.register(plugin, name="echo")
        call = asyncio.create_task(manager.execute("echo", "hang"))
        await plugin.entered.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        metrics = manager.get_metrics().plugins["echo"]
    assert (metrics.requests_total, metrics.requests_cancelled, metrics.requests_failure) == (1, 1, 0)


async def test_breaker_trips_refusals_rate_limits_and_retries_are_counted() -> None:
    clock = FakeClock()
    breaker = PluginConfig(
        name="flaky",
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, min_request_threshold=0, recovery_timeout=60),
    )
    limited = PluginConfig(
        name="limited", rate_limit=RateLimitConfig(enabled=True, requests_per_second=1, burst_size=1)
    )
    retried = PluginConfig(name="retried", retry=RetryConfig(max_retries=2, initial_interval=0, random_jitter=False))
    async with AsyncPluginManager(str, str, ON, clock=clock) as manager:
        await manager.register(Echo(), config=breaker)
        await manager.register(Echo(), config=limited)
        await manager.register(Echo(), config=retried)
        for _ in range(2):
            with pytest.raises(plugwire.ExecutionError):
                await manager.execute("flaky", "fail")
        for _ in range(3):
            with pytest.raises(plugwire.CircuitOpenError):
                await manager.execute("flaky", "hi")
        await manager.execute("limited", "a")
        with pytest.raises(plugwire.RateLimitedError):
            await manager.execute("limited", "b")
        with pytest.raises(plugwire.TransportError):  # retryable: tried three times
            await manager.execute("retried", "unreachable")
        metrics = manager.get_metrics()
    flaky = metrics.plugins["flaky"]
    assert (flaky.circuit_breaker_trips, flaky.circuit_breaker_rejections, flaky.circuit_breaker_state) == (
        1,
        3,
        "open",
    )
    assert flaky.failures_by_code == {1203: 2, 1401: 3}
    assert metrics.plugins["limited"].rate_limited == 1
    assert metrics.plugins["retried"].retries == 2
    assert metrics.plugins["retried"].failures_by_code == {1300: 1}  # one call, however many attempts
    assert metrics.circuit_breaker_trips == 1


async def test_failed_health_checks_are_counted_with_their_latency() -> None:
    plugin = Echo()
    async with AsyncPluginManager(str, str, ON) as manager:
        await manager.register(plugin, name="echo")
        plugin.sick = True
        await manager.health()
        await manager.health()
        plugin.sick = False
        await manager.health()
        metrics = manager.get_metrics()
    echo = metrics.plugins["echo"]
    assert (echo.health_checks, echo.health_check_failures) == (3, 2)
    assert echo.health_check_latency >= 0.0
    assert metrics.health_check_failures == 2


async def test_an_offline_plugins_refusals_are_failures_with_their_code() -> None:
    plugin = Echo()
    config = PluginConfig(name="echo", health_check=plugwire.HealthCheckConfig(failure_limit=1))
    async with AsyncPluginManager(str, str, ON) as manager:
        await manager.register(plugin, config=config)
        plugin.sick = True
        await manager.health()  # in-process plugins cannot restart: offline at the limit
        with pytest.raises(plugwire.PluginUnavailableError):
            await manager.execute("echo", "hi")
        metrics = manager.get_metrics().plugins["echo"]
    assert metrics.status is Status.OFFLINE
    assert metrics.failures_by_code == {ErrorCode.PLUGIN_OFFLINE: 1}


async def test_the_buckets_come_from_the_config() -> None:
    config = ManagerConfig(metrics=MetricsConfig(enabled=True, buckets=(1.0, 2.0)))
    async with AsyncPluginManager(str, str, config) as manager:
        await manager.register(Echo(), name="echo")
        await manager.execute("echo", "hi")
        histogram = manager.get_metrics().request_duration
    assert histogram.bounds == (1.0, 2.0)
    assert histogram.counts == (1, 0, 0)


def test_bucket_bounds_must_be_positive_and_increasing() -> None:
    with pytest.raises(plugwire.ConfigError, match=r"metrics\.buckets\[1\]: bucket bounds must increase"):
        ManagerConfig.from_dict({"metrics": {"buckets": [0.5, 0.5]}})
    with pytest.raises(plugwire.ConfigError, match=r"metrics\.buckets\[0\]"):
        ManagerConfig.from_dict({"metrics": {"buckets": [-1]}})


async def test_after_shutdown_the_last_snapshot_is_kept() -> None:
    async with AsyncPluginManager(str, str, ON) as manager:
        await manager.register(Echo(), name="echo")
        await manager.execute("echo", "hi")
    assert manager.get_metrics().plugins["echo"].requests_success == 1
    assert manager.get_metrics() is manager.get_metrics()


class RecordingExporter:
    """A custom exporter: reads the source when told to, records its lifecycle."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.source: MetricsSource | None = None
        self.fail = fail
        self.closed = 0
        self.last: ManagerMetrics | None = None

    async def start(self, source: MetricsSource) -> None:
        if self.fail is not None:
            raise self.fail
        self.source = source

    async def aclose(self) -> None:
        assert self.source is not None
        self.last = self.source()  # a final export, after every call ended
        self.closed += 1


async def test_registering_an_exporter_turns_metrics_on_for_running_plugins() -> None:
    exporter = RecordingExporter()
    async with AsyncPluginManager(str, str) as manager:
        await manager.register(Echo(), name="echo")
        await manager.execute("echo", "before")  # not counted: metrics were off
        await manager.register_metrics_exporter(exporter)
        assert manager.metrics_enabled
        await manager.execute("echo", "after")
        assert exporter.source is not None
        assert exporter.source().plugins["echo"].requests_success == 1
        with pytest.raises(ObservabilityError) as caught:
            await manager.register_metrics_exporter(exporter)
        assert caught.value.code == ErrorCode.EXPORTER_ALREADY_REGISTERED
    assert exporter.closed == 1
    assert exporter.last is not None
    assert exporter.last.plugins["echo"].requests_success == 1


async def test_an_exporter_that_cannot_start_fails_the_registration_with_a_code() -> None:
    async with AsyncPluginManager(str, str) as manager:
        with pytest.raises(ExporterError) as caught:
            await manager.register_metrics_exporter(RecordingExporter(fail=OSError("no route")))
        assert caught.value.code == ErrorCode.EXPORTER_START_FAILED
        assert "OSError: no route" in caught.value.message
        refused = ExporterError("port 9464 is in use", code=ErrorCode.EXPORTER_ADDRESS_IN_USE)
        with pytest.raises(ExporterError) as caught:
            await manager.register_metrics_exporter(RecordingExporter(fail=refused))
        assert caught.value is refused
        bad: Any = object()
        with pytest.raises(plugwire.ConfigError) as wrong:
            await manager.register_metrics_exporter(bad)
        assert wrong.value.code == ErrorCode.CONFIG_WRONG_TYPE


async def test_an_exporter_that_fails_to_close_does_not_fail_the_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(RecordingExporter):
        async def aclose(self) -> None:
            raise RuntimeError("collector gone")

    async with AsyncPluginManager(str, str) as manager:
        await manager.register_metrics_exporter(Broken())
    assert "Broken failed to close: RuntimeError: collector gone" in caplog.text


async def test_with_metrics_and_production_turn_metrics_on() -> None:
    assert not plugwire.simple(str, str).build().metrics_enabled
    assert plugwire.production(str, str).build().metrics_enabled
    manager = plugwire.simple(str, str).with_metrics(buckets=(0.5, 1.0)).with_plugin("echo", Echo()).build()
    async with manager:
        await manager.execute("echo", "hi")
        assert manager.get_metrics().request_duration.bounds == (0.5, 1.0)


def test_the_blocking_twin_reads_metrics_on_its_loop() -> None:
    with plugwire.PluginManager(str, str, ON) as manager:
        manager.register(Echo(), name="echo")
        assert manager.execute("echo", "hi") == "hi"
        assert manager.get_metrics().plugins["echo"].requests_success == 1
        assert manager.metrics_enabled


async def test_load_config_names_the_sections_it_does_not_apply(caplog: pytest.LogCaptureFixture) -> None:
    async with AsyncPluginManager(str, str) as manager:
        await manager.load_config(ManagerConfig(metrics=MetricsConfig(enabled=True)))
        assert not manager.metrics_enabled
    assert "its metrics settings differ from the manager's and are not applied" in caplog.text
