"""Layer 5 observability: per-plugin call counters and their snapshots, metrics exporters,
tracing and log correlation.

The counters (`metrics.CallCounters`) are plain attributes the call path adds to; everything
an operator reads (`ManagerMetrics`, the Prometheus collector, the OTLP instruments) is built
from a snapshot taken when asked, so reading costs the calls nothing.

The exporters (`prometheus`, `otlp`) are not imported here: the manager imports this package,
and every module a host loads is more for the garbage collector to walk on every call (about
1k instructions per call for a few modules, measured with `benchmarks.instructions`).
"""

from __future__ import annotations

from .metrics import (
    DEFAULT_BUCKETS,
    CallCounters,
    Histogram,
    ManagerMetrics,
    MetricsExporter,
    MetricsSource,
    PluginMetrics,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "CallCounters",
    "Histogram",
    "ManagerMetrics",
    "MetricsExporter",
    "MetricsSource",
    "PluginMetrics",
]
