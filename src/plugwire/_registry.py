"""The manager's routing table: which plugin answers to which name, and why none does.

A name is in one of four places: running (`entries`, what calls are routed to), disabled in
config (`disabled`: known, never started; calls get 1202), reserved by a registration still
starting (`starting`), or waiting in the config for `start()` (`pending`). Changes to the
table happen under `lock`; a lookup on the call path reads `entries` alone, with no lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._config import PluginConfig, did_you_mean
from ._errors import (
    ManagerNotStartedError,
    PluginAlreadyRegisteredError,
    PluginDisabledError,
    PluginNotFoundError,
)
from ._models import HealthStatus, Status

if TYPE_CHECKING:
    from ._entry import PluginEntry
    from ._sources import PluginSource

__all__ = ["DISABLED", "PluginRegistry"]

DISABLED = HealthStatus(status=Status.OFFLINE, message="disabled in config; not started")
"""The status listed for a plugin its config disables."""


class PluginRegistry:
    """Running, disabled, starting and pending plugins, by name.

    Args:
        pending: Plugins to register when the manager starts (its config's, then a builder's).
    """

    __slots__ = ("disabled", "entries", "lock", "pending", "started", "starting")

    def __init__(self, pending: Iterable[tuple[PluginSource | None, PluginConfig]] = ()) -> None:
        #: Running plugins: what calls are routed to (read without the lock).
        self.entries: dict[str, PluginEntry] = {}
        self.disabled: dict[str, PluginConfig] = {}
        self.starting: set[str] = set()
        self.pending: list[tuple[PluginSource | None, PluginConfig]] = list(pending)
        self.lock = asyncio.Lock()
        #: Whether `start()` took the pending plugins (a lookup before it says so: 1209).
        self.started = False

    def __contains__(self, name: object) -> bool:
        return name in self.entries or name in self.disabled

    def __len__(self) -> int:
        return len(self.entries) + len(self.disabled)

    def take_pending(self) -> list[tuple[PluginSource | None, PluginConfig]]:
        """The plugins waiting for `start()`, lower `priority` values first (stable)."""
        self.started = True
        pending, self.pending = self.pending, []
        pending.sort(key=lambda item: item[1].priority)
        return pending

    # ----------------------------------------------------------------- changes
    async def reserve(self, config: PluginConfig) -> bool:
        """Claim `config.name` for a registration: True when it is to be started (call
        `release` when the start ends, either way), False when the config disables it (it is
        then listed as disabled, and nothing is started).

        Raises:
            PluginAlreadyRegisteredError: The name is taken (1010).
        """
        name = config.name
        async with self.lock:  # only the name is reserved under the lock; the start runs outside it
            if name in self.entries or name in self.disabled or name in self.starting:
                raise PluginAlreadyRegisteredError(f"a plugin named {name!r} is already registered", plugin=name)
            if not config.enabled:
                self.disabled[name] = config
                return False
            self.starting.add(name)
            return True

    def release(self, name: str) -> None:
        """The registration that reserved `name` ended (its plugin runs, or it failed)."""
        self.starting.discard(name)

    async def remove(self, name: str) -> PluginEntry | None:
        """Take `name` out of the table: its entry, or None for a disabled plugin.

        Raises:
            PluginNotFoundError: No plugin of that name (1201).
        """
        async with self.lock:
            entry = self.entries.pop(name, None)
            disabled = self.disabled.pop(name, None)
        if entry is None and disabled is None:
            raise self.not_found(name)
        return entry

    async def remove_if(self, name: str, config: PluginConfig) -> PluginEntry | None:
        """Take out the running plugin `name` if it still runs with `config` (not a newer one)."""
        async with self.lock:
            entry = self.entries.get(name)
            if entry is None or entry.config is not config:
                return None
            del self.entries[name]
            return entry

    async def clear(self) -> list[PluginEntry]:
        """Empty the table (the manager is shutting down): the entries that were running."""
        async with self.lock:  # a registration in progress finishes (and sees the shutdown) first
            entries = list(self.entries.values())
            self.entries.clear()
            self.disabled.clear()
        return entries

    # ----------------------------------------------------------------- lookups
    def lookup(self, name: str) -> PluginEntry:
        """The running plugin `name`, else the coded error that says why there is none.

        Raises:
            PluginDisabledError: 1202. ManagerNotStartedError: 1209, the manager was never
                started to register the plugins of its config. PluginNotFoundError: 1201.
        """
        entry = self.entries.get(name)
        if entry is not None:
            return entry
        if name in self.disabled:
            raise PluginDisabledError(f"plugin {name!r} is disabled", plugin=name)
        if not self.started and self.pending:  # plugins wait in its config for start()
            configured = any(config.name == name for _, config in self.pending)
            what = f"plugin {name!r} is configured but" if configured else f"no plugin named {name!r} is"
            raise ManagerNotStartedError(
                f"{what} not registered: the manager was never started (use it as a context manager,"
                " `async with manager:` or `with manager:`, or call start(), which registers the configured"
                " plugins)",
                plugin=name,
            )
        raise self.not_found(name)

    def not_found(self, name: str) -> PluginNotFoundError:
        """1201 for `name`, suggesting the closest registered name."""
        hint = did_you_mean(name, [*self.entries, *self.disabled])
        return PluginNotFoundError(f"no plugin named {name!r} is registered{hint}", plugin=name)

    def statuses(self, running: dict[str, HealthStatus]) -> dict[str, HealthStatus]:
        """`running`'s statuses, with every disabled plugin listed as offline."""
        running.update(dict.fromkeys(self.disabled, DISABLED))
        return running
