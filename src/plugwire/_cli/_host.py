"""A host for the commands that call plugins: a manager from a config file or from one command."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .._config import ManagerConfig
from .._errors import PluginError
from .._manager import AsyncPluginManager
from ._common import fail

__all__ = ["configure_logging", "exec_config", "open_host"]

#: The name `--exec` gives its one plugin.
EXEC_NAME = "plugin"


def exec_config(command: Sequence[str], *, name: str = EXEC_NAME, **plugin: Any) -> ManagerConfig:
    """A config of one subprocess plugin running `command` (`plugwire call --exec ...`).

    `plugin` takes further `PluginConfig` fields as plain data, e.g. `connection={...}`.
    On bad values the coded config error is printed and the command exits 2.
    """
    data = {"name": name, "transport": "executable", "executable": command[0], "args": list(command[1:]), **plugin}
    try:
        return ManagerConfig.from_dict({"plugins": [data]})
    except PluginError as exc:
        fail(exc)


@contextlib.asynccontextmanager
async def open_host(config: ManagerConfig) -> AsyncIterator[AsyncPluginManager[Any, Any]]:
    """Start a manager for `config` whose requests and responses are plain JSON-like data.

    The manager is shut down when the block exits. A manager that cannot start (a plugin
    refused by the whitelist, an executable that does not exist) prints its coded error and
    exits 2.
    """
    manager: AsyncPluginManager[Any, Any] = AsyncPluginManager(Any, Any, config)
    try:
        await manager.start()
    except PluginError as exc:
        await manager.shutdown()
        fail(exc)
    try:
        yield manager
    finally:
        await manager.shutdown()


def configure_logging(level: str = "warning") -> None:
    """plugwire's log records on stderr as `time level logger: message` lines, at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("plugwire")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
