"""Turning tracing on: the config's `tracing` section, `enable_tracing`, `with_tracing()`,
bad input, a missing extra, and that nothing is wrapped while tracing is off."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import plugwire
from plugwire import ConfigError, ManagerConfig, TracingConfig
from plugwire._config import tracing_traces_url
from plugwire.errors import ErrorCode, MissingDependencyError, ObservabilityError
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.plugins.traceparent_plugin import TraceparentPlugin, TraceReq, TraceResp


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://gateway.example/otlp", "https://gateway.example/otlp/v1/traces"),
        ("http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"),
        ("http://[::1]:4318", "http://[::1]:4318/v1/traces"),
    ],
)
def test_an_endpoint_is_a_base_url_or_the_traces_url(endpoint: str, url: str) -> None:
    assert tracing_traces_url(endpoint) == url
    assert ManagerConfig.from_dict({"tracing": {"endpoint": endpoint}}).tracing.endpoint == endpoint


@pytest.mark.parametrize(
    "endpoint",
    [
        "localhost:4318",
        "collector",
        "ftp://collector:21",
        "http://",
        "http://host:99999",
        "http://h/x?y=1",
        "http://h#f",
    ],
)
def test_an_invalid_endpoint_is_a_config_error_naming_tracing_endpoint(endpoint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ManagerConfig.from_dict({"tracing": {"enabled": True, "endpoint": endpoint}})
    assert caught.value.code == ErrorCode.CONFIG_INVALID_VALUE
    assert caught.value.message.startswith("tracing.endpoint: ")


@pytest.mark.parametrize(("rate", "message"), [(1.5, "expected float <= 1.0"), (-0.1, "expected float >= 0.0")])
async def test_enable_tracing_checks_its_config_as_a_file_would_be(rate: float, message: str) -> None:
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        with pytest.raises(ConfigError) as caught:
            await manager.enable_tracing(TracingConfig(sample_rate=rate))
        assert caught.value.message.startswith(f"tracing.sample_rate: {message}")
        with pytest.raises(ConfigError, match=r"^\[1003\] tracing.endpoint: expected an http"):
            await manager.enable_tracing(TracingConfig(endpoint="collector:4318"))
        with pytest.raises(ConfigError, match="expected a TracingConfig"):
            await manager.enable_tracing({"enabled": True})  # type: ignore[arg-type]
        assert manager.tracing is None


async def test_an_endpoint_and_a_provider_together_are_refused() -> None:
    provider = TracerProvider()
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        with pytest.raises(ConfigError, match=r"either tracing\.endpoint .* or tracer_provider"):
            await manager.enable_tracing(TracingConfig(endpoint="http://localhost:4318"), tracer_provider=provider)
        assert manager.tracing is None
    provider.shutdown()


async def test_enabling_twice_is_a_coded_error() -> None:
    provider = TracerProvider()
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await manager.enable_tracing(TracingConfig(), tracer_provider=provider)
        with pytest.raises(ObservabilityError) as caught:
            await manager.enable_tracing(TracingConfig(), tracer_provider=provider)
        assert caught.value.code == ErrorCode.TRACING_ALREADY_ENABLED == 2105
    provider.shutdown()


def test_without_the_otel_extra_tracing_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    config = ManagerConfig.from_dict({"tracing": {"enabled": True}})
    with pytest.raises(MissingDependencyError) as caught:
        plugwire.AsyncPluginManager(TraceReq, TraceResp, config)
    assert caught.value.code == ErrorCode.MISSING_DEPENDENCY
    assert "pip install 'plugwire[otel]'" in caught.value.message
    plugwire.AsyncPluginManager(TraceReq, TraceResp)  # tracing off: not needed


async def test_enable_tracing_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
        with pytest.raises(MissingDependencyError, match=r"plugwire\[otel\]"):
            await manager.enable_tracing(TracingConfig())
        assert manager.tracing is None


def _entry(manager: Any, name: str) -> Any:
    return manager._entries[name]


async def test_nothing_is_wrapped_while_tracing_is_off_and_running_plugins_are_wrapped_when_on() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
        await manager.register(TraceparentPlugin(), name="p")
        entry = _entry(manager, "p")
        # Off: the call path is the untraced one, object for object.
        assert entry.handler == entry.pipeline.run
        assert entry.pipeline.terminal == entry.transport.call
        await manager.execute("p", TraceReq())
        await manager.enable_tracing(TracingConfig(), tracer_provider=provider)
        assert entry.handler != entry.pipeline.run
        assert entry.pipeline.terminal != entry.transport.call
        await manager.execute("p", TraceReq())
        await manager.register(TraceparentPlugin(), name="later")
        await manager.execute("later", TraceReq())
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert names == ["plugwire.attempt later", "plugwire.attempt p", "plugwire.execute later", "plugwire.execute p"]
    provider.shutdown()


async def test_the_config_turns_tracing_on_at_start() -> None:
    with OTLPReceiver() as receiver:
        config = ManagerConfig.from_dict(
            {"tracing": {"enabled": True, "service_name": "from-config", "endpoint": receiver.endpoint}}
        )
        manager: plugwire.AsyncPluginManager[TraceReq, TraceResp] = plugwire.AsyncPluginManager(
            TraceReq, TraceResp, config
        )
        assert manager.tracing is None
        async with manager:
            assert manager.tracing is not None
            assert manager.tracing.owns_provider
            assert manager.tracing.traces_url == f"{receiver.endpoint}/v1/traces"
            await manager.register(TraceparentPlugin(), name="p")
            await manager.execute("p", TraceReq())
        spans = receiver.wait_for_spans(lambda spans: len(spans) >= 2)
    assert {span.resource["service.name"] for span in spans} == {"from-config"}
    assert {span.span.name for span in spans} == {"plugwire.execute p", "plugwire.attempt p"}


async def test_a_loaded_config_file_turns_tracing_on(tmp_path: Any) -> None:
    provider_free = tmp_path / "plugwire.yaml"
    with OTLPReceiver() as receiver:
        provider_free.write_text(f"tracing:\n  enabled: true\n  endpoint: {receiver.endpoint}\n  sample_rate: 0.25\n")
        async with plugwire.AsyncPluginManager(TraceReq, TraceResp) as manager:
            await manager.load_config(str(provider_free))
            assert manager.tracing is not None
            assert manager.tracing.config.sample_rate == 0.25


def test_the_builder_turns_tracing_on_and_the_blocking_manager_has_it() -> None:
    with OTLPReceiver() as receiver:
        builder = plugwire.development(TraceReq, TraceResp).with_tracing(
            endpoint=receiver.endpoint, service_name="built", sample_rate=1.0
        )
        with builder.with_plugin("p", TraceparentPlugin()).build_blocking() as manager:
            assert manager.tracing is not None
            assert manager.tracing.config.service_name == "built"
            answer = manager.execute("p", TraceReq(), manager.inject_tracing(None, "blocking-op"))
            assert answer.traceparent.startswith("00-")
        spans = receiver.wait_for_spans(lambda spans: len(spans) >= 2)
    assert {span.span.name for span in spans} == {"blocking-op", "plugwire.attempt p"}
    with pytest.raises(ConfigError, match="with_tracing"):
        plugwire.development(TraceReq, TraceResp).with_tracing(sample_rate=3)
