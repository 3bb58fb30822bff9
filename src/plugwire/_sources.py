"""Plugin sources: what `plugwire.in_process(...)` (and the other transport helpers) return.

A source turns a name and a base `PluginConfig` into the plugin's full config, and that
config into a started-on-demand transport. Config files describe plugins without a source;
`source_for_config` picks the right one by transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec

from ._config import PluginConfig
from ._errors import ConfigError, ErrorCode
from ._models import Transport
from ._transports.base import BaseTransport
from ._transports.inprocess import InProcessTransport

__all__ = ["InProcess", "PluginSource", "in_process", "source_for_config"]


@runtime_checkable
class PluginSource(Protocol):
    """Where a plugin lives; made by `plugwire.in_process()` and its siblings."""

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        """Return `base` renamed to `name`, with this source's transport settings."""
        ...

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        """Build (not start) the transport for `config`."""
        ...


@dataclass(frozen=True, slots=True)
class InProcess:
    """A plugin object that runs inside the host process."""

    plugin: Any
    codec: bool = True

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        return msgspec.structs.replace(base, name=name, transport=Transport.IN_PROCESS)

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        return InProcessTransport(self.plugin, request_type=request_type, codec=self.codec)


def in_process(plugin: Any, *, codec: bool = True) -> InProcess:
    """Run `plugin` inside the host process.

    Args:
        plugin: An object implementing `plugwire.Plugin` (`def` methods are run in threads).
        codec: Encode and validate requests and responses as a remote plugin would
            (the default); False passes objects through untouched, for speed.
    """
    return InProcess(plugin, codec=codec)


def source_for_config(config: PluginConfig) -> PluginSource:
    """The source that builds a transport for a plugin described only by config.

    Raises:
        ConfigError: The transport needs an object (in-process) or is not available here.
    """
    if config.transport is Transport.IN_PROCESS:
        raise ConfigError(
            f"plugin {config.name!r}: an in-process plugin is an object; register it with "
            "manager.register(obj) instead of describing it in config",
            code=ErrorCode.CONFIG_UNKNOWN_TRANSPORT,
        )
    raise ConfigError(
        f"plugin {config.name!r}: the {config.transport.value!r} transport is not available in this build",
        code=ErrorCode.CONFIG_UNKNOWN_TRANSPORT,
    )
