"""Tools for testing code that uses plugwire, and for plugin authors."""

from __future__ import annotations

from .._call import Call as Call
from .._clock import Clock as Clock
from .._transports.mock import MockTransport as MockTransport
from ._fakeclock import FakeClock as FakeClock
from .conformance import ConformanceReport as ConformanceReport
from .conformance import Finding as Finding
from .conformance import check_plugin as check_plugin
from .grpc_conformance import check_grpc_plugin as check_grpc_plugin
from .grpc_conformance import check_grpc_plugin_async as check_grpc_plugin_async

__all__ = [
    "Call",
    "Clock",
    "ConformanceReport",
    "FakeClock",
    "Finding",
    "MockTransport",
    "check_grpc_plugin",
    "check_grpc_plugin_async",
    "check_plugin",
]
