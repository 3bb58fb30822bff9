"""Reloading the configuration while the host runs: validate all, diff by name, apply.

`AsyncPluginManager.reload_config(config_or_path)` reads and validates the whole new config
first (an invalid one changes nothing), then compares each plugin with the one running under
its name:

- new name → registered; name gone → drained and closed;
- a launch setting changed (transport, executable, args, env, work_dir, endpoint, auth, or a
  connection setting other than `request_timeout`) → replaced through a new generation
  (`_lifecycle`), so the plugin serves throughout;
- only policies changed (retry, circuit breaker, health check, rate limit,
  `connection.request_timeout`, priority, type, metadata) → applied in place: same
  processes, a rebuilt pipeline; the breaker and the rate limiter carry on when their own
  settings did not change.

Only plugins that came from a config (`load_config`, the manager's config, an earlier reload)
are managed; a plugin registered in code is left alone. Reloads are serialised, and reloads
asked for while one runs coalesce: the next one applies the latest config, and every caller
it covered gets its report. With `hot_reload.enabled`, `HotReloader` reloads on file changes.

See docs/lifecycle.md.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import replace as struct_replace

from ._config import (
    ManagerConfig,
    PluginConfig,
    config_from_data,
    load_config_file,
    validate_plugin_config,
    with_host_python,
)
from ._errors import PluginError
from ._policies import build_call_pipeline, compose, make_breaker
from ._security import AuditEvent
from ._security.watch import WhitelistWatcher

if TYPE_CHECKING:
    from ._entry import PluginEntry
    from ._manager import AsyncPluginManager

__all__ = ["HotReloader", "ReloadReport", "Reloader", "classify"]

#: Settings applied to a running plugin in place (everything else needs a new generation).
POLICY_FIELDS = ("retry", "circuit_breaker", "health_check", "rate_limit", "priority", "type", "metadata")
_DEFAULT = PluginConfig(name="x")


class ReloadReport(msgspec.Struct, kw_only=True):
    """What one `reload_config()` did, by plugin name; each value says why.

    Attributes:
        source: The file reloaded ("" for a `ManagerConfig` object).
        added: Registered (new in the config, or enabled).
        removed: Drained and closed (gone from the config, or disabled).
        replaced: Given a new generation (the launch settings named changed).
        updated: Policies applied in place, same processes (the settings named changed).
        unchanged: The same as before.
        failed: Could not be applied (the error); the plugin is as it was.
        not_applied: Sections other than `plugins` that differ from the running config and
            are not applied by a reload (restart the host for them).
    """

    source: str = ""
    added: dict[str, str] = msgspec.field(default_factory=dict)
    removed: dict[str, str] = msgspec.field(default_factory=dict)
    replaced: dict[str, str] = msgspec.field(default_factory=dict)
    updated: dict[str, str] = msgspec.field(default_factory=dict)
    unchanged: dict[str, str] = msgspec.field(default_factory=dict)
    failed: dict[str, str] = msgspec.field(default_factory=dict)
    not_applied: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every change was applied."""
        return not self.failed

    def summary(self) -> str:
        parts = [
            f"{len(getattr(self, kind))} {kind}"
            for kind in ("added", "removed", "replaced", "updated", "unchanged", "failed")
            if getattr(self, kind)
        ]
        return ", ".join(parts) or "no plugins"


def _changed(old: msgspec.Struct, new: msgspec.Struct, fields: Iterable[str], prefix: str = "") -> list[str]:
    return [f"{prefix}{name}" for name in fields if getattr(old, name) != getattr(new, name)]


def classify(old: PluginConfig, new: PluginConfig) -> tuple[str, list[str]]:
    """ "unchanged", "updated" (policies only) or "replaced", with the settings that changed."""
    if old == new:
        return "unchanged", []
    launch_fields = [f for f in old.__struct_fields__ if f not in POLICY_FIELDS and f not in ("name", "connection")]
    launch = _changed(old, new, launch_fields)
    connection = [f for f in old.connection.__struct_fields__ if f != "request_timeout"]
    launch += _changed(old.connection, new.connection, connection, "connection.")
    if launch:
        return "replaced", launch
    policies = _changed(old, new, POLICY_FIELDS)
    policies += _changed(old.connection, new.connection, ("request_timeout",), "connection.")
    return "updated", policies


class Reloader:
    """One manager's reloads: serialised, coalesced, all-or-nothing at validation."""

    def __init__(self, manager: AsyncPluginManager[Any, Any]) -> None:
        self._m = manager
        self._lock = asyncio.Lock()
        self._asked = 0  # reloads asked for so far
        self._done = 0  # the newest ask the last finished reload covered
        self._latest: ManagerConfig | str | os.PathLike[str] | None = None
        self._outcome: ReloadReport | BaseException | None = None
        #: Reloads run so far (applied, or refused whole), and how many were refused.
        self.count = 0
        self.failed = 0

    async def reload(self, config: ManagerConfig | str | os.PathLike[str]) -> ReloadReport:
        self._m._check_open()
        self._asked += 1
        mine = self._asked
        self._latest = config
        async with self._lock:
            if self._done >= mine:  # a later reload, run since, covered this one
                return self._result()
            covers, wanted = self._asked, self._latest
            try:
                self._outcome = await self._apply(wanted)
            except BaseException as exc:
                self._outcome = exc
                self.failed += 1
                raise
            finally:
                self._done = covers
                self.count += 1
            return self._result()

    def _result(self) -> ReloadReport:
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome

    async def _load(self, config: ManagerConfig | str | os.PathLike[str]) -> tuple[ManagerConfig, str]:
        """The new config, fully validated (nothing has changed yet)."""
        if isinstance(config, ManagerConfig):
            config_from_data(config.to_dict())  # built in Python: check it as a file would be
            loaded, source = config, ""
        else:
            loaded = await asyncio.to_thread(load_config_file, config)  # names the file, path and line
            source = os.fspath(config)
        plugins = tuple(
            with_host_python(validate_plugin_config(p, f"plugins[{i}] ({p.name!r})"))
            for i, p in enumerate(loaded.plugins)
        )
        return struct_replace(loaded, plugins=plugins), source

    async def _apply(self, config: ManagerConfig | str | os.PathLike[str]) -> ReloadReport:
        m = self._m
        try:
            loaded, source = await self._load(config)
        except PluginError as exc:
            where = "" if isinstance(config, ManagerConfig) else os.fspath(config)
            m._guard.record(AuditEvent.CONFIG_CHANGED, None, file=where, accepted=False, error=exc.message)
            m._log("error", f"config reload refused, nothing changed: {exc}")
            raise
        report = ReloadReport(source=source, not_applied=self.other_sections(loaded))
        if not m._registry.started:  # before start(): what start() will register
            m._registry.pending = [(s, p) for s, p in m._registry.pending if s is not None]
            m._registry.pending.extend((None, p) for p in loaded.plugins)
            report.added.update({p.name: "registered on start()" for p in loaded.plugins})
        else:
            await asyncio.gather(*(self._one(name, old, new, report) for name, old, new in self._pairs(loaded)))
        m.config = struct_replace(m.config, plugins=loaded.plugins)
        m._guard.record(
            AuditEvent.CONFIG_CHANGED,
            None,
            file=source,
            accepted=True,
            **{kind: sorted(getattr(report, kind)) for kind in ("added", "removed", "replaced", "updated", "failed")},
        )
        level = "warning" if report.failed else "info"
        skipped = f"; not applied (read at start only): {', '.join(report.not_applied)}" if report.not_applied else ""
        m._log(level, f"config reloaded{f' from {source}' if source else ''}: {report.summary()}{skipped}")
        for name, why in report.failed.items():
            m._log("warning", f"config reload: plugin {name!r} not changed: {why}")
        return report

    def other_sections(self, loaded: ManagerConfig) -> tuple[str, ...]:
        """The sections of `loaded`, other than its plugins, that differ from the running config."""
        running = self._m.config
        return tuple(
            name
            for name in loaded.__struct_fields__
            if name not in ("plugins", "hot_reload") and getattr(loaded, name) != getattr(running, name)
        )

    def _pairs(self, loaded: ManagerConfig) -> list[tuple[str, PluginConfig | None, PluginConfig | None]]:
        """(name, running config or None, new config or None) for every config-managed name."""
        m = self._m
        managed = m._lifecycle.from_config
        current: dict[str, PluginConfig] = {name: entry.config for name, entry in m._entries.items() if name in managed}
        current.update(m._registry.disabled)
        wanted = {p.name: p for p in loaded.plugins}
        names = list(dict.fromkeys([*current, *wanted]))
        return [(name, current.get(name), wanted.get(name)) for name in names]

    async def _one(self, name: str, old: PluginConfig | None, new: PluginConfig | None, report: ReloadReport) -> None:
        m = self._m
        try:
            if old is None and new is not None:
                if name in m._entries or name in m._registry.starting:
                    report.failed[name] = "a plugin of that name is registered in code; a config cannot change it"
                    return
                await m._register_config(new, None)
                if not new.enabled:
                    m._lifecycle.from_config.add(name)
                report.added[name] = "new in the config" if new.enabled else "new in the config, disabled"
            elif new is None or (old is not None and old.enabled and not new.enabled):
                await self._remove(name)
                report.removed[name] = "gone from the config" if new is None else "disabled in the config"
                if new is not None:
                    m._registry.disabled[name] = new
            elif old is not None and not old.enabled:
                if new.enabled:
                    m._registry.disabled.pop(name, None)
                    await m._register_config(new, None)
                    report.added[name] = "enabled in the config"
                else:
                    m._registry.disabled[name] = new
                    report.unchanged[name] = "disabled"
            else:
                assert old is not None
                kind, what = classify(old, new)
                if kind == "unchanged":
                    report.unchanged[name] = ""
                elif kind == "updated":
                    await self._update(name, new)
                    report.updated[name] = ", ".join(what)
                else:
                    await m._lifecycle.replace(name, None, config=new, from_config=True)
                    report.replaced[name] = ", ".join(what)
        except PluginError as exc:
            report.failed[name] = str(exc)

    async def _remove(self, name: str) -> None:
        m = self._m
        async with m._lifecycle.lock(name):
            entry = await m._registry.remove(name)
            if entry is not None:
                m._log("info", f"config reload: removing plugin {name!r} after its calls end")
                await m._lifecycle.retire(entry, None)

    async def _update(self, name: str, config: PluginConfig) -> None:
        """Apply a policy-only change to the running plugin `name` in place."""
        m = self._m
        async with m._lifecycle.lock(name):
            entry = m._entries.get(name)
            if entry is None:
                return
            apply_policies(entry, config, m)


def apply_policies(entry: PluginEntry, config: PluginConfig, manager: AsyncPluginManager[Any, Any]) -> None:
    """Give a running entry `config`'s policies, keeping its transport (and processes).

    The breaker is kept (state, trips) when its settings did not change, and the rate
    limiter (its tokens) likewise; the rest of the pipeline is rebuilt. Calls in flight finish
    on the pipeline they started with; the next call takes the new one.
    """
    old = entry.config
    breaker = entry.breaker
    if old.circuit_breaker != config.circuit_breaker:
        breaker = make_breaker(config, clock=manager.clock, listeners=manager._breaker_listeners, logger=manager.logger)
    pipeline = build_call_pipeline(
        config,
        entry.transport.call,
        clock=manager.clock,
        breaker=breaker,
        transport_timeouts=entry.transport.enforces_timeout,
        counters=entry.counters,
    )
    if (
        old.rate_limit == config.rate_limit
        and entry.pipeline is not None
        and config.connection.request_timeout == (old.connection.request_timeout)
    ):
        pipeline.limiter = entry.pipeline.limiter  # its tokens carry on
    entry.config = config
    entry.attempt_timeout = config.connection.request_timeout or None
    entry.breaker = breaker
    entry.pipeline = pipeline
    entry.handler = compose(manager._policies, pipeline.run)
    if manager._tracing is not None:  # the rebuilt handler and terminal are traced again
        manager._tracing.instrument(entry)
    monitor = entry.monitor
    monitor.config = config.health_check
    if monitor._loop_task is not None and monitor._loop_task.done():  # checks were off: turn them on
        monitor._loop_task = None
    monitor.start()


class HotReloader:
    """Reloads the manager's config when its file changes (`hot_reload`).

    The file is watched with the whitelist's watcher (`watchfiles` when installed, else
    polling its stat): a save by rename and a Kubernetes ConfigMap `..data` symlink swap are
    both seen. A change whose content is the same as the last one loaded reloads nothing.
    """

    def __init__(self, manager: AsyncPluginManager[Any, Any], path: str, debounce: float) -> None:
        self._m = manager
        self.path = path
        self._last: bytes | None = None
        self.watcher = WhitelistWatcher(path, self._changed, poll_interval=debounce, debounce=debounce)
        #: Reloads this watcher started, and those refused (invalid file).
        self.reloads = 0
        self.refused = 0
        self._reloaded = asyncio.Condition()

    async def start(self) -> None:
        self._last = await asyncio.to_thread(self._read)
        await self.watcher.start()

    def _read(self) -> bytes | None:
        try:
            with open(self.path, "rb") as file:
                return file.read()
        except OSError:
            return None

    async def _changed(self) -> None:
        content = await asyncio.to_thread(self._read)
        if content is None or content == self._last:
            return  # gone for a moment (mid-swap), or the same bytes: nothing to do
        self._last = content
        try:
            await self._m.reload_config(self.path)
        except PluginError:
            self.refused += 1  # logged and audited by the reload
        finally:
            async with self._reloaded:
                self.reloads += 1
                self._reloaded.notify_all()

    async def wait_reloads(self, count: int) -> None:
        """Wait until `count` reloads (applied or refused) were started by this watcher."""
        async with self._reloaded:
            await self._reloaded.wait_for(lambda: self.reloads >= count)

    async def aclose(self) -> None:
        await self.watcher.aclose()
