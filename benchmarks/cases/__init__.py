"""Every benchmark case, one module per area; importing this package registers them all.

Add an area by adding a module here and importing it below (order = order in the table).
"""

from __future__ import annotations

from . import (
    goplugin,
    goplugin_serve,
    grpc,
    inprocess,
    lifecycle,
    metrics,
    peers,
    policies,
    process,
    security,
    subprocess,
    tracing,
)

__all__ = [
    "goplugin",
    "goplugin_serve",
    "grpc",
    "inprocess",
    "lifecycle",
    "metrics",
    "peers",
    "policies",
    "process",
    "security",
    "subprocess",
    "tracing",
]
