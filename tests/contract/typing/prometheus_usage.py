"""The Prometheus exporter as a user types it (checked by mypy --strict, not run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY

import plugwire
from plugwire.observe import MetricsExporter


async def serve_metrics(manager: plugwire.AsyncPluginManager[str, str]) -> tuple[int | None, str | None]:
    config = plugwire.PrometheusConfig(namespace="myapp", subsystem="plugins", port=9464, address="0.0.0.0")
    exporter = plugwire.PrometheusExporter(config)
    await manager.register_metrics_exporter(exporter)
    prefix: str = config.prefix
    assert prefix
    return exporter.port, exporter.url


def mounted() -> tuple[Callable[..., Any], Callable[..., Any], MetricsExporter]:
    exporter = plugwire.PrometheusExporter(registry=REGISTRY)
    return exporter.asgi_app(), exporter.wsgi_app(), exporter


def blocking(manager: plugwire.PluginManager[str, str]) -> None:
    manager.register_metrics_exporter(plugwire.PrometheusExporter(plugwire.PrometheusConfig(port=0)))
