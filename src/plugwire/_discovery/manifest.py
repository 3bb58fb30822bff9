"""The `plugin.yaml` manifest of a discovered plugin folder: its schema and its checks.

A manifest is read with the config loader (safe YAML, bounded size and nesting) and
validated with its error translation, so every mistake is a coded error naming the file and
the field (``plugins/echo/plugin.yaml: version: expected str, got int``).
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from .._config import convert_document, load_data_file
from .._config._structs import PluginName
from .._errors import ConfigError, ErrorCode, SecurityError
from .._models import Transport
from .._security.hashing import check_hex_digest
from .._security.whitelist import has_parent_segment

__all__ = ["MANIFEST_NAME", "PluginManifest", "read_manifest"]

#: The file that makes a folder a plugin.
MANIFEST_NAME = "plugin.yaml"


class PluginManifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a plugin folder says about the plugin in it (docs/lifecycle.md, "Discovery").

    Attributes:
        name: The name calls use (1-128 letters, digits, '.', '_' or '-').
        version: The plugin's version, for people and the report (the handshake's own
            `info()` is what the manager keeps).
        description: One line about it.
        command: The program to run, relative to the folder (no `..`, no absolute path);
            required for the `executable` transport. A script needs its `#!` line.
        args: Its arguments; relative paths in them resolve against the folder (the
            process runs there).
        env: Extra environment variables (a mapping, or a list of "NAME=value").
        transport: `executable` (default: the host runs `command`) or `grpc` (the plugin
            is served by someone else at `endpoint`).
        endpoint: `host:port` of a `grpc` plugin.
        hash: The sha256 of `command`'s bytes (64 hex digits, "sha256:" may precede them);
            when given, the file is refused unless it matches, at discovery and before
            every start.
        capabilities: What the plugin offers, for people and the report.
    """

    name: PluginName
    version: str = ""
    description: str = ""
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = msgspec.field(default_factory=dict)
    transport: Transport = Transport.EXECUTABLE
    endpoint: str = ""
    hash: str = ""
    capabilities: tuple[str, ...] = ()


def read_manifest(file: Path) -> PluginManifest:
    """Read and check the manifest `file` (blocking: call it off the event loop).

    Returns:
        The manifest, its `hash` reduced to lower-case hex.

    Raises:
        ConfigFileError: Missing, unreadable, malformed or too large (1701-1704).
        ConfigError: A bad field, naming the file and the field (1001-1007, 1012).
        SecurityError: `command` has a `..` segment (1808); `hash` is not sha256 hex (1806).
    """
    where = str(file)
    data = load_data_file(file)
    manifest = convert_document({} if data is None else data, PluginManifest, where)
    if manifest.transport is Transport.EXECUTABLE:
        _check_command(manifest.command, where)
    elif manifest.transport is Transport.GRPC:
        if not manifest.endpoint.strip():
            raise ConfigError(
                f"{where}: endpoint: a grpc plugin needs 'endpoint'", code=ErrorCode.CONFIG_MISSING_ENDPOINT
            )
        if manifest.command:
            raise ConfigError(
                f"{where}: command: a grpc plugin is served at its endpoint; the host runs no command",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
    else:
        raise ConfigError(
            f"{where}: transport: a manifest describes an 'executable' or a 'grpc' plugin, "
            f"not {manifest.transport.value!r}",
            code=ErrorCode.CONFIG_UNKNOWN_TRANSPORT,
        )
    if manifest.hash:
        if manifest.transport is not Transport.EXECUTABLE:
            raise ConfigError(
                f"{where}: hash: pins the bytes of 'command'; a grpc plugin has none",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
        digest = manifest.hash.strip().removeprefix("sha256:")
        manifest = msgspec.structs.replace(manifest, hash=check_hex_digest("sha256", digest, where=f"{where}: hash"))
    return manifest


def _check_command(command: str, where: str) -> None:
    if not command.strip():
        raise ConfigError(
            f"{where}: command: an executable plugin needs 'command' (relative to the folder)",
            code=ErrorCode.CONFIG_MISSING_EXECUTABLE,
        )
    if "\x00" in command or os.path.isabs(command):
        raise ConfigError(
            f"{where}: command: must be a path relative to the plugin's folder, got {command!r}",
            code=ErrorCode.CONFIG_INVALID_VALUE,
        )
    if has_parent_segment(command):
        raise SecurityError(
            f"{where}: command: {command!r} has a '..' segment; a plugin runs a file of its own folder",
            code=ErrorCode.PATH_TRAVERSAL,
        )
