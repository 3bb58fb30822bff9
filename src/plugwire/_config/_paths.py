"""Paths in a config: relative ones resolve against the config file's folder, and
`executable: sys.executable` names the host's own Python.

A config read from a file means its relative paths the way its author saw them, next to
the file (as a whitelist's relative paths are); a config built in code or from a dict keeps
them as written, so they resolve against the working directory when used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TypeVar

import msgspec

from ._structs import AuthConfig, ManagerConfig, PluginConfig

__all__ = ["AUTH_PATH_FIELDS", "HOST_PYTHON", "resolve_paths", "with_host_python"]

#: The `executable` that means the interpreter running the host (`sys.executable`): no
#: program has this name, so it cannot be mistaken for one found on PATH.
HOST_PYTHON = "sys.executable"

#: The files an `AuthConfig` names (TLS material and secrets).
AUTH_PATH_FIELDS = ("cert_file", "key_file", "ca_file", "api_key_file", "token_file", "password_file")

_S = TypeVar("_S", bound=msgspec.Struct)


def resolve_paths(config: ManagerConfig, base_dir: str | os.PathLike[str] | None) -> ManagerConfig:
    """`config` with `executable: sys.executable` replaced by the host's interpreter and,
    when `base_dir` is given, every relative path joined to it.

    The paths: each plugin's `executable` (when it has a slash; a bare name is looked up on
    PATH), `work_dir` and `auth.*_file`; `security.whitelist_file` and
    `security.audit_config.audit_file`; `discovery.directories`. `args` and `endpoint` are passed as written.
    """
    base = None if base_dir is None else os.path.abspath(base_dir)
    plugins = tuple(_plugin(plugin, base) for plugin in config.plugins)
    security = config.security
    if base is not None:
        security = msgspec.structs.replace(
            _joined(security, ("whitelist_file",), base),
            audit_config=_joined(security.audit_config, ("audit_file",), base),
        )
    hot_reload = config.hot_reload
    discovery = config.discovery
    if base is not None:
        hot_reload = _joined(hot_reload, ("file",), base)
        folders = tuple(os.path.join(base, folder) for folder in discovery.directories)
        discovery = msgspec.structs.replace(discovery, directories=folders)
    return msgspec.structs.replace(
        config, plugins=plugins, security=security, hot_reload=hot_reload, discovery=discovery
    )


def with_host_python(plugin: PluginConfig) -> PluginConfig:
    """`plugin` with `executable: sys.executable` replaced by the host's interpreter."""
    if plugin.executable != HOST_PYTHON:
        return plugin
    return msgspec.structs.replace(plugin, executable=sys.executable)


def _plugin(plugin: PluginConfig, base: str | None) -> PluginConfig:
    plugin = with_host_python(plugin)
    executable = plugin.executable
    if base is not None and _is_relative(executable) and ("/" in executable or os.sep in executable):
        executable = str(Path(base, executable))
    if base is None:
        return plugin if executable == plugin.executable else msgspec.structs.replace(plugin, executable=executable)
    auth: AuthConfig = _joined(plugin.auth, AUTH_PATH_FIELDS, base)
    work_dir = str(Path(base, plugin.work_dir)) if _is_relative(plugin.work_dir) else plugin.work_dir
    return msgspec.structs.replace(plugin, executable=executable, work_dir=work_dir, auth=auth)


def _joined(struct: _S, fields: tuple[str, ...], base: str) -> _S:
    changes = {name: str(Path(base, value)) for name in fields if _is_relative(value := getattr(struct, name))}
    return msgspec.structs.replace(struct, **changes) if changes else struct


def _is_relative(path: str) -> bool:
    return bool(path) and not Path(path).is_absolute()
