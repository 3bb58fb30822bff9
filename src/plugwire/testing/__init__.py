"""Tools for testing code that uses plugwire, and for plugin authors."""

from __future__ import annotations

from .._transports.base import Call as Call
from .._transports.mock import MockTransport as MockTransport
from ._fakeclock import FakeClock as FakeClock

__all__ = ["Call", "FakeClock", "MockTransport"]
