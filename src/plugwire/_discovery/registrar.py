"""Keeps a manager's plugins in step with its plugin folders: registers what a scan finds,
reports what it refuses, and (watching) adds, drains and restarts plugins as files come,
go and change."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from .._config import DiscoveryConfig, PluginConfig
from .._errors import ErrorCode, ManagerClosedError, PluginError, ReplacementError, SecurityError
from .._models import PluginInfo
from .._security import AuditEvent, AuditLog, WhitelistWatcher
from .._tasks import TaskOwner
from .manifest import PluginManifest
from .scan import Candidate, Fingerprint, Refusal, scan

if TYPE_CHECKING:
    from .._handle import PluginHandle

__all__ = ["DiscoveredPlugin", "Discovery", "DiscoveryReport"]


class _Manager(Protocol):
    """What discovery needs of `AsyncPluginManager` (it cannot import the manager: the
    manager imports it)."""

    @property
    def audit(self) -> AuditLog | None: ...
    async def register(self, plugin: Any, *, name: str | None = None, config: PluginConfig | None = None) -> None: ...
    async def graceful_unregister(self, name: str, timeout: float | None = None) -> bool: ...
    async def replace(
        self,
        name: str,
        plugin_or_source: Any = None,
        *,
        config: PluginConfig | None = None,
        drain_timeout: float | None = None,
    ) -> Any: ...
    def get_plugin(self, name: str) -> PluginHandle[Any, Any]: ...
    def _log(self, level: str, message: str) -> None: ...
    def __contains__(self, name: object) -> bool: ...

    config: Any


@dataclass(frozen=True, slots=True)
class DiscoveredPlugin:
    """A plugin discovery registered.

    Attributes:
        name: Its name.
        path: The executable, or the folder of its manifest.
        info: What the plugin said about itself in its handshake (`info()`).
        manifest: Its manifest, or None for a bare executable.
    """

    name: str
    path: str
    info: PluginInfo
    manifest: PluginManifest | None = None


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    """Where discovery stands after a scan.

    Attributes:
        registered: The plugins discovery runs now, by name.
        refused: What was found and is not run, with the coded reason of each.
        waiting: Files seen but still changing: started once they hold still.
        added: Names registered by this scan.
        removed: Names drained and unregistered by this scan (their files went).
        replaced: Names restarted from changed files by this scan.
        scans: How many scans ran so far.
    """

    registered: Mapping[str, DiscoveredPlugin] = field(default_factory=dict)
    refused: tuple[Refusal, ...] = ()
    waiting: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    scans: int = 0


class DirectoryWatcher(WhitelistWatcher):
    """The whitelist watcher's machinery (watchfiles, or polling that waits for the folder
    to hold still) on a whole plugin folder and its subfolders: every change concerns it."""

    def __init__(
        self, folder: Path, on_change: Callable[[], Awaitable[None]], *, poll_interval: float, close_timeout: float
    ) -> None:
        super().__init__(folder, on_change, poll_interval=poll_interval, close_timeout=close_timeout)
        self.folder = self.path
        self.recursive = True

    def concerns(self, changed: str | os.PathLike[str]) -> bool:
        return True

    def _signature(self) -> tuple[int, ...] | None:
        facts: list[int] = []
        try:
            for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
                facts.extend(_stat_facts(entry.path))
                if entry.is_dir():
                    for inner in sorted(os.scandir(entry.path), key=lambda e: e.name):
                        facts.extend(_stat_facts(inner.path))
        except OSError:
            return None
        return tuple(facts)


def _same_files(old: Candidate, new: Candidate) -> bool:
    return old.path == new.path and old.fingerprint == new.fingerprint


def _stat_facts(path: str) -> tuple[int, ...]:
    try:
        info = os.stat(path)
    except OSError:
        return (hash(path), -1)
    return (hash(path), info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode)


class Discovery:
    """Registers the plugins found in the configured folders into one manager.

    Made by the manager when `config.discovery.enabled`; reach it as `manager.discovery`.

    Args:
        manager: The manager to register into.
        config: The folders, pattern, watch and settle time.
        plugin_config: The settings a discovered plugin named `name` starts from (the
            builder's profile and `with_*` sections; default: the README's defaults).
    """

    def __init__(
        self,
        manager: _Manager,
        config: DiscoveryConfig,
        plugin_config: Callable[[str], PluginConfig] | None = None,
    ) -> None:
        self.config = config
        self.directories = tuple(Path(os.path.abspath(folder)) for folder in config.directories)
        self.plugin_config: Callable[[str], PluginConfig] = plugin_config or (lambda name: PluginConfig(name=name))
        self._manager = manager
        self._running: dict[str, tuple[Candidate, DiscoveredPlugin]] = {}
        #: Registrations that failed, by path: not tried again until their files change.
        self._failed: dict[str, Refusal] = {}
        self._waiting: dict[str, Fingerprint] = {}  # by path: seen once, not yet seen unchanged
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._report = DiscoveryReport()
        self._tasks = TaskOwner("plugwire-discovery")
        self._watchers: list[DirectoryWatcher] = []
        self._settling: asyncio.Task[None] | None = None
        self._started = False

    @property
    def report(self) -> DiscoveryReport:
        """Where discovery stands after its last scan."""
        return self._report

    async def wait_for(self, predicate: Callable[[DiscoveryReport], bool]) -> DiscoveryReport:
        """Wait (on a condition, not a timer) until a scan leaves a report `predicate` accepts.

        Example: ``await manager.discovery.wait_for(lambda r: "echo" in r.registered)``.
        Bound it with `asyncio.timeout` (a folder may never change).
        """
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self._report))
            return self._report

    async def start(self) -> DiscoveryReport:
        """Register what the folders hold now (files present at start are taken as they
        are), then start watching them if configured. Called by the manager's `start()`."""
        if self._started:
            return self._report
        self._started = True
        report = await self.rescan(settled=True)
        if self.config.watch:
            for folder in self.directories:
                if not folder.is_dir():
                    self._manager._log("warning", f"discovery: {folder} is not a folder; not watching it")
                    continue
                watcher = DirectoryWatcher(
                    folder, self._on_change, poll_interval=self.config.settle, close_timeout=self._drain_limit() + 10.0
                )
                self._watchers.append(watcher)
                await watcher.start()
        return report

    async def rescan(self, *, settled: bool = False) -> DiscoveryReport:
        """Look at the folders now and bring the manager in step; scans run one at a time.

        Args:
            settled: Take new and changed files as complete at once (the start's scan), and
                try again the plugins that failed; otherwise a file must look the same in two
                scans `settle` seconds apart, and a plugin that failed is tried again only
                once its files change.

        Returns:
            The report of this scan. A plugin that fails is logged and reported, never
            stopping the others.
        """
        async with self._lock:
            found = await asyncio.to_thread(scan, self.directories, self.config.pattern)
            report = await self._apply(found, settled)
        async with self._changed:
            self._report = report
            self._changed.notify_all()
        if report.waiting and not self._tasks.closed and self._settling is None:
            self._settling = self._tasks.start(self._settle(), name="settle")
        return report

    async def _on_change(self) -> None:
        await self.rescan()

    async def _settle(self) -> None:
        """Look again once the files seen changing had `settle` seconds to hold still."""
        try:
            await asyncio.sleep(self.config.settle)
        finally:
            self._settling = None
        await self.rescan()

    async def _apply(self, found: list[Candidate | Refusal], settled: bool) -> DiscoveryReport:
        for name in [name for name in self._running if name not in self._manager]:
            # Unregistered by other means (by hand, or stopped by a whitelist change): forgotten,
            # so a later scan registers it again (and, refused, audits it again).
            del self._running[name]
        refused = [item for item in found if isinstance(item, Refusal)]
        candidates = self._without_collisions([item for item in found if isinstance(item, Candidate)], refused)
        start: list[Candidate] = []
        restart: list[Candidate] = []
        waiting: dict[str, Fingerprint] = {}
        for candidate in candidates.values():
            key = str(candidate.path)
            running = self._running.get(candidate.name)
            if running is not None and _same_files(running[0], candidate):
                continue  # unchanged (a name that moved to other files is a change too)
            failed = self._failed.get(key)
            if not settled and failed is not None and failed.fingerprint == candidate.fingerprint:
                refused.append(failed)  # failed with these very files: wait for a change
                continue
            if not settled and self._waiting.get(key) != candidate.fingerprint:
                waiting[key] = candidate.fingerprint
                continue
            (restart if running is not None else start).append(candidate)
        gone = [name for name in self._running if name not in candidates]
        self._waiting = waiting
        self._failed = {path: item for path, item in self._failed.items() if item in refused}
        removed: list[str] = []
        outcomes: list[Refusal | BaseException | None] = []
        try:
            removed = [name for name in gone if await self._remove(name)]
            outcomes = await asyncio.gather(
                *(self._register(c) for c in start), *(self._replace(c) for c in restart), return_exceptions=True
            )
        except ManagerClosedError:
            pass
        done: set[str] = set()
        for candidate, outcome in zip([*start, *restart], outcomes, strict=False):
            if isinstance(outcome, Refusal):
                refused.append(outcome)
                self._failed[outcome.path] = outcome
            elif outcome is None:
                done.add(candidate.name)
            elif not isinstance(outcome, ManagerClosedError):
                raise outcome
        for item in refused:
            if item not in self._report.refused:
                self._audit(item)
        return DiscoveryReport(
            registered={name: self._running[name][1] for name in sorted(self._running)},
            refused=tuple(refused),
            waiting=tuple(sorted(waiting)),
            added=tuple(c.name for c in start if c.name in done),
            removed=tuple(removed),
            replaced=tuple(c.name for c in restart if c.name in done),
            scans=self._report.scans + 1,
        )

    def _without_collisions(self, found: list[Candidate], refused: list[Refusal]) -> dict[str, Candidate]:
        """One candidate per name. When several claim a name, a plugin already running from
        one of them keeps it; the others are refused (1009), all of them when none runs."""
        by_name: dict[str, list[Candidate]] = {}
        for candidate in found:
            by_name.setdefault(candidate.name, []).append(candidate)
        chosen: dict[str, Candidate] = {}
        for name, group in by_name.items():
            if len(group) == 1:
                chosen[name] = group[0]
                continue
            running = self._running.get(name)
            keep = next((c for c in group if running is not None and c.path == running[0].path), None)
            if keep is not None:
                chosen[name] = keep
            paths = ", ".join(str(c.path) for c in group)
            for candidate in group:
                if candidate is not keep:
                    refused.append(
                        Refusal(
                            str(candidate.path),
                            ErrorCode.CONFIG_DUPLICATE_PLUGIN,
                            f"{candidate.path}: plugin name {name!r} is claimed by more than one plugin ({paths})",
                            name,
                            candidate.fingerprint,
                        )
                    )
        return chosen

    async def _register(self, candidate: Candidate) -> Refusal | None:
        """Register one plugin; a failure becomes its refusal (logged), never an exception."""
        return await self._start(candidate, replacing=False)

    async def _replace(self, candidate: Candidate) -> Refusal | None:
        """A changed plugin: a new generation beside the running one (`manager.replace`), so
        no call fails meanwhile; if the new one cannot serve, the old one keeps serving and
        the refusal says why. A plugin no longer registered (unregistered by hand) is
        registered afresh."""
        return await self._start(candidate, replacing=candidate.name in self._manager)

    async def _start(self, candidate: Candidate, *, replacing: bool) -> Refusal | None:
        name = candidate.name
        config = self.plugin_config(name)
        config = msgspec.structs.replace(config, metadata={**config.metadata, **candidate.metadata})
        try:
            if replacing:
                await self._manager.replace(name, candidate.source, config=config, drain_timeout=self._drain_limit())
            else:
                await self._manager.register(candidate.source, name=name, config=config)
        except ManagerClosedError:
            raise
        except PluginError as exc:
            doing = "replacing" if replacing else "registering"
            self._manager._log("warning", f"discovery: not {doing} {candidate.path}: {exc.message}")
            refused = exc.__cause__ if isinstance(exc, ReplacementError) else exc  # the whitelist's own refusal
            audited = isinstance(refused, SecurityError) and refused.details.get("by") != "discovery"
            return Refusal(str(candidate.path), exc.code, exc.message, name, candidate.fingerprint, audited)
        except Exception as exc:  # not a plugwire error: a bug somewhere below; still only this plugin's
            logging.getLogger("plugwire.manager").exception("discovery: starting %s failed", candidate.path)
            reason = f"{candidate.path}: {type(exc).__name__}: {exc}"
            return Refusal(str(candidate.path), ErrorCode.PROCESS, reason, name, candidate.fingerprint)
        info = self._manager.get_plugin(name).info()
        self._running[name] = (candidate, DiscoveredPlugin(name, str(candidate.path), info, candidate.manifest))
        return None

    async def _remove(self, name: str) -> bool:
        """Drain and unregister a plugin discovery registered (its files went or changed)."""
        self._running.pop(name, None)
        try:
            await self._manager.graceful_unregister(name, timeout=self._drain_limit())
        except PluginError as exc:  # already gone: unregistered by hand
            self._manager._log("info", f"discovery: {name!r} was already unregistered ({exc.message})")
            return False
        return True

    def _drain_limit(self) -> float:
        return float(self._manager.config.shutdown_timeout)

    def _audit(self, refusal: Refusal) -> None:
        """Record a refusal in the audit log (when on), unless the security engine did."""
        audit = self._manager.audit
        if audit is None or refusal.audited:
            return
        audit.record(
            AuditEvent.DISCOVERY_REFUSED,
            refusal.name,
            path=refusal.path,
            code=int(refusal.code),
            reason=refusal.reason,
        )

    async def aclose(self) -> None:
        """Stop watching (a scan in progress finishes) and cancel a pending re-scan."""
        for watcher in self._watchers:
            await watcher.aclose()
        self._watchers.clear()
        await self._tasks.aclose()
