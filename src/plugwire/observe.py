"""Observability: the metrics snapshot types, what a custom exporter implements, the
Prometheus and OTLP exporters, and the latency histogram's default buckets (see
docs/observability.md)."""

from __future__ import annotations

from ._observe import DEFAULT_BUCKETS as DEFAULT_BUCKETS
from ._observe import Histogram as Histogram
from ._observe import ManagerMetrics as ManagerMetrics
from ._observe import MetricsExporter as MetricsExporter
from ._observe import MetricsSource as MetricsSource
from ._observe import PluginMetrics as PluginMetrics
from ._observe.otlp import OTLPConfig as OTLPConfig
from ._observe.otlp import OTLPExporter as OTLPExporter
from ._observe.prometheus import PrometheusConfig as PrometheusConfig
from ._observe.prometheus import PrometheusExporter as PrometheusExporter

__all__ = [
    "DEFAULT_BUCKETS",
    "Histogram",
    "ManagerMetrics",
    "MetricsExporter",
    "MetricsSource",
    "OTLPConfig",
    "OTLPExporter",
    "PluginMetrics",
    "PrometheusConfig",
    "PrometheusExporter",
]
