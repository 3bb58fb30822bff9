"""Plugins that change while the host runs: what `replace()`, `reload_config()`, `shutdown()`
and discovery report (see docs/lifecycle.md)."""

from __future__ import annotations

from ._discovery import DiscoveredPlugin as DiscoveredPlugin
from ._discovery import Discovery as Discovery
from ._discovery import DiscoveryReport as DiscoveryReport
from ._discovery import Refusal as Refusal
from ._lifecycle import ReplaceResult as ReplaceResult
from ._lifecycle import ShutdownReport as ShutdownReport
from ._reload import ReloadReport as ReloadReport

__all__ = [
    "DiscoveredPlugin",
    "Discovery",
    "DiscoveryReport",
    "Refusal",
    "ReloadReport",
    "ReplaceResult",
    "ShutdownReport",
]
