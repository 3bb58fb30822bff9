"""Tools for testing code that uses plugwire, and for plugin authors."""

from __future__ import annotations

from .._call import Call as Call
from .._clock import Clock as Clock
from .._transports.mock import MockTransport as MockTransport
from ._fakeclock import FakeClock as FakeClock
from .conformance import ConformanceReport as ConformanceReport
from .conformance import Finding as Finding
from .conformance import check_plugin as check_plugin

__all__ = ["Call", "Clock", "ConformanceReport", "FakeClock", "Finding", "MockTransport", "check_plugin"]
