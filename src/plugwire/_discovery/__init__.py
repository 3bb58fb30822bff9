"""Discovery: plugins found in folders (executables matching a pattern, or folders holding a
`plugin.yaml` manifest), registered when the manager starts and, when watched, kept in step
with the folders."""

from __future__ import annotations

from .manifest import MANIFEST_NAME, PluginManifest, read_manifest
from .registrar import DiscoveredPlugin, Discovery, DiscoveryReport
from .scan import Candidate, Refusal, scan

__all__ = [
    "MANIFEST_NAME",
    "Candidate",
    "DiscoveredPlugin",
    "Discovery",
    "DiscoveryReport",
    "PluginManifest",
    "Refusal",
    "read_manifest",
    "scan",
]
