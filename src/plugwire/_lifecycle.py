"""Generations of a plugin: replacing one without a gap, draining the old, and what was cut.

`AsyncPluginManager.replace` starts a new generation beside the running one, checks it, then
switches routing with one assignment in the registry's `entries` (calls that already looked up
the old generation finish there), then retires the old: it waits on the entry's idle event for
its calls, cancels those still running when the drain timeout runs out (each ends with
`DrainCancelledError`, 1211, and the transport sends the plugin `cancel`), and closes it.

Cancelling a caller needs its task. The call path records none (it must cost nothing): when a
drain times out, `callers_of` finds the tasks whose chain of awaits is in `execute` on that
entry, and `execute` turns the cancellation it sees into 1211 (`Lifecycle.drain_error`, only on
its CancelledError path).

See docs/lifecycle.md.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import replace as struct_replace

from ._config import PluginConfig, validate_plugin_config, with_host_python
from ._errors import (
    ConfigError,
    DrainCancelledError,
    ErrorCode,
    PluginError,
    ReplacementError,
)
from ._models import HealthStatus, Status
from ._security import AuditEvent
from ._sources import InProcess, PluginSource

if TYPE_CHECKING:
    from ._entry import PluginEntry
    from ._manager import AsyncPluginManager

__all__ = ["Lifecycle", "ReplaceResult", "ShutdownReport"]

_CANCEL_GRACE = 2.0  # seconds a cancelled call gets to unwind (and send `cancel`) before the close


class ReplaceResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one `replace()` did.

    Attributes:
        name: The plugin.
        old_generation: The generation that was retired.
        generation: The generation now serving.
        version: The new generation's version (from its handshake).
        drained: Calls that were running on the old generation at the switch and finished.
        cancelled: Calls cancelled when the drain timeout ran out (each got 1211).
        cut: Calls still running when the old generation was closed (started before the
            replacement began, so not cancellable one by one; they end with the transport's
            closing error).
        seconds: Wall time of the whole replacement.
    """

    name: str
    old_generation: int
    generation: int
    version: str
    drained: int = 0
    cancelled: int = 0
    cut: int = 0
    seconds: float = 0.0


class ShutdownReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `shutdown()` had to cut: per plugin, the calls still running at its timeout.

    Attributes:
        plugins: Plugins closed.
        cut: Plugin name -> calls still in flight when it was closed (absent: none).
        drained: True when every call finished in time.
    """

    plugins: int = 0
    cut: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def drained(self) -> bool:
        return not self.cut


def callers_of(entry: PluginEntry, execute: Any) -> list[asyncio.Task[Any]]:
    """The tasks with a call in flight on `entry`: each task whose chain of awaits passes
    through `execute` (the manager's `execute` code object) with `entry` as its entry.

    Only asked when a drain times out (rarely), so that the call path records nothing.
    """
    found = []
    for task in asyncio.all_tasks():
        if task.done():
            continue
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None and frame.f_code is execute and frame.f_locals.get("entry") is entry:
                found.append(task)
                break
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return found


class _Retiring:
    """A generation switched away from, until it is closed."""

    __slots__ = ("closed", "entry")

    def __init__(self, entry: PluginEntry) -> None:
        self.entry = entry
        self.closed = asyncio.Event()


class Lifecycle:
    """The generations of one manager's plugins: replacement, draining, what was cut."""

    def __init__(self, manager: AsyncPluginManager[Any, Any]) -> None:
        self._m = manager
        self._locks: dict[str, asyncio.Lock] = {}
        #: What `replace(name)` starts again: the source each plugin was last started from
        #: (None: from its config).
        self.sources: dict[str, PluginSource | None] = {}
        #: Plugins registered from a configuration: the ones a config reload manages.
        self.from_config: set[str] = set()
        #: Generations switched away from and not closed yet, by name.
        self.retiring: dict[str, list[_Retiring]] = {}
        #: Tasks whose call the drain cancelled -> the generation it ran on (`drain_error`).
        self.cut: dict[asyncio.Task[Any], int] = {}

    def registered(self, name: str, source: PluginSource | None) -> None:
        """A registration started plugin `name` from `source` (None: from a config)."""
        self.sources[name] = source
        if source is None:
            self.from_config.add(name)
        else:
            self.from_config.discard(name)

    def lock(self, name: str) -> asyncio.Lock:
        """The lock that serialises replacements (and reloads) of `name`."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def draining_calls(self) -> dict[str, int]:
        """Calls still in flight on generations being retired, by plugin name."""
        return {
            name: sum(record.entry.inflight for record in records) for name, records in self.retiring.items() if records
        }

    # ------------------------------------------------------------- replacement
    async def replace(
        self,
        name: str,
        plugin_or_source: Any = None,
        *,
        config: PluginConfig | None = None,
        drain_timeout: float | None = None,
        from_config: bool = False,
    ) -> ReplaceResult:
        """See `AsyncPluginManager.replace`; `from_config` starts `config` alone (a reload),
        not the source the plugin was last started from."""
        m = self._m
        m._check_open()
        if config is not None and config.name != name:
            raise ConfigError(
                f"replace({name!r}): config.name is {config.name!r}; a replacement keeps the plugin's name",
                code=ErrorCode.CONFIG_INVALID_VALUE,
                plugin=name,
            )
        async with self.lock(name):
            old = m._registry.lookup(name)  # 1201/1202/1209 when there is nothing to replace
            began = time.perf_counter()
            if from_config:
                source = None
            elif plugin_or_source is None:
                source = self.sources.get(name)
            elif isinstance(plugin_or_source, PluginSource):
                source = plugin_or_source
            else:
                source = InProcess(plugin_or_source)
            base = config or old.config
            new_config = source.configure(name, base) if source is not None else base
            new_config = with_host_python(validate_plugin_config(new_config, f"plugin {name!r}"))
            generation = old.generation + 1
            new = await self._start_generation(new_config, source, generation)
            if old.counters is not None:  # one plugin's metrics go on across generations
                new.count_calls(old.counters)
            # Its health-check and restart counts too (the monitor's own state starts afresh).
            new.monitor.checks += old.monitor.checks
            new.monitor.failed_checks += old.monitor.failed_checks
            new.monitor.restarts += old.monitor.restarts + old.transport.crash_restarts()
            async with m._registry.lock:
                switched = not m._closing and m._entries.get(name) is old
                if switched:
                    if m._tracing is not None:  # traced like the generation it replaces
                        m._tracing.instrument(new)
                    m._entries[name] = new  # the switch: new calls go to the new generation
                    new.monitor.start()
            if not switched:
                await new.monitor.aclose()
                await new.transport.aclose()
                m._check_open()
                raise m._registry.not_found(name)  # unregistered while the new one started
            self.sources[name] = source
            m._guard.record(
                AuditEvent.REPLACED,
                name,
                transport=new_config.transport.value,
                version=new.info.version,
                old_version=old.info.version,
                generation=generation,
            )
            m._log(
                "info",
                f"replaced plugin {name!r}: generation {generation} ({new.info.version}) serves; "
                f"draining generation {old.generation} ({old.inflight} calls in flight)",
            )
            at_switch = old.inflight
            cancelled, cut = await self.retire(old, drain_timeout)
        return ReplaceResult(
            name=name,
            old_generation=old.generation,
            generation=generation,
            version=new.info.version,
            drained=max(at_switch - cancelled - cut, 0),
            cancelled=cancelled,
            cut=cut,
            seconds=time.perf_counter() - began,
        )

    async def _start_generation(
        self, config: PluginConfig, source: PluginSource | None, generation: int
    ) -> PluginEntry:
        """Start and check generation `generation`; a `ReplacementError` naming why if it cannot serve."""
        m = self._m
        name = config.name
        try:
            new = await m._start_entry(config, source)
        except PluginError as exc:
            self._refused(config, generation, exc.message)
            raise ReplacementError(
                f"plugin {name!r}: generation {generation} failed to start ({exc.message}); "
                "the running generation keeps serving",
                plugin=name,
                details={"generation": generation, "cause_code": int(exc.code)},
            ) from exc
        new.generation = generation
        try:
            await self._first_check(new, generation)
        except BaseException:
            await new.monitor.aclose()
            await new.transport.aclose()
            raise
        return new

    async def _first_check(self, new: PluginEntry, generation: int) -> None:
        """The new generation must answer a health check as healthy (or degraded) before it
        gets traffic; skipped when its config turns health checks off."""
        name = new.config.name
        if new.monitor.connecting:  # a gRPC plugin not reachable: never switch to it
            unreachable = new.monitor.unavailable()
            self._refused(new.config, generation, unreachable.message)
            raise ReplacementError(
                f"plugin {name!r}: generation {generation} cannot be reached ({unreachable.message}); "
                "the running generation keeps serving",
                plugin=name,
                details={"generation": generation, "cause_code": int(unreachable.code)},
            ) from unreachable
        if not new.config.health_check.enabled:
            return
        limit = new.config.health_check.timeout or None
        why = ""
        cause: BaseException | None = None
        try:
            async with self._m.clock.timeout(limit):
                status: HealthStatus = await new.transport.health()
        except TimeoutError as exc:
            why, cause = f"its first health check timed out after {limit:g}s", exc
        except PluginError as exc:
            why, cause = f"its first health check failed: {exc.message}", exc
        else:
            if status.status not in (Status.HEALTHY, Status.DEGRADED):
                why = f"its first health check says {status.status.value}: {status.message}"
        if why:
            self._refused(new.config, generation, why)
            raise ReplacementError(
                f"plugin {name!r}: generation {generation} is not healthy ({why}); "
                "the running generation keeps serving",
                plugin=name,
                details={"generation": generation},
            ) from cause

    def _refused(self, config: PluginConfig, generation: int, why: str) -> None:
        m = self._m
        m._guard.record(AuditEvent.REPLACE_FAILED, config.name, generation=generation, error=why)
        m._log("warning", f"replacement of plugin {config.name!r} failed: generation {generation}: {why}")

    # ----------------------------------------------------------------- draining
    async def retire(self, entry: PluginEntry, drain_timeout: float | None) -> tuple[int, int]:
        """Drain `entry` (already out of the routing table) and close it: (cancelled, cut).

        Waits on its idle event up to `drain_timeout` (default: the manager's
        `shutdown_timeout`), then cancels the calls still running (each fails with 1211 and
        the plugin gets `cancel`), gives them a moment to unwind, and closes the transport.
        The work runs in a task of the manager: if the caller is cancelled, the generation is
        still drained and closed (and a shutdown waits for it).
        """
        m = self._m
        record = _Retiring(entry)
        self.retiring.setdefault(entry.config.name, []).append(record)  # seen by a shutdown from now on
        work = self._retire(record, drain_timeout)
        if m._tasks.closed:  # the manager's own tasks are closed: its shutdown is ending
            return await work
        what = f"retire {entry.config.name!r} generation {entry.generation}"
        return await asyncio.shield(m._tasks.start(work, name=what, shielded=True))

    async def _retire(self, record: _Retiring, drain_timeout: float | None) -> tuple[int, int]:
        m = self._m
        entry = record.entry
        name = entry.config.name
        limit = m.config.shutdown_timeout if drain_timeout is None else drain_timeout
        cancelled = cut = 0
        try:
            await entry.monitor.aclose()  # no health check or restart of a generation on its way out
            if not await m._drain(entry, limit):
                cancelled = self.cancel_calls(entry)
                if cancelled:
                    m._log(
                        "warning",
                        f"plugin {name!r}: cancelled {cancelled} calls of generation {entry.generation} "
                        f"after the {limit:g}s drain timeout",
                    )
                    await m._drain(entry, _CANCEL_GRACE)
                cut = entry.inflight
        finally:
            for task in [task for task in self.cut if task.done()]:
                del self.cut[task]
            try:
                await m._close_entry(entry)
            finally:
                record.closed.set()
                records = self.retiring.get(name, [])
                if record in records:
                    records.remove(record)
                if not records:
                    self.retiring.pop(name, None)
        return cancelled, cut

    def cancel_calls(self, entry: PluginEntry) -> int:
        """Cancel every call in flight on `entry`; each fails with 1211 (`drain_error`)."""
        tasks = [task for task in callers_of(entry, self._m.execute.__code__) if task not in self.cut]
        for task in tasks:
            self.cut[task] = entry.generation
            task.cancel()
        return len(tasks)

    def drain_error(self, name: str) -> DrainCancelledError | None:
        """In `execute`, on CancelledError: the coded error when it was the drain that
        cancelled this task's call (and not also its own caller), else None."""
        task = asyncio.current_task()
        generation = self.cut.pop(task, None) if task is not None else None
        if task is None or generation is None or task.uncancel() > 0:
            return None
        return DrainCancelledError(
            f"plugin {name!r}: call cancelled: generation {generation} was retired and its drain timeout ran out",
            plugin=name,
            details={"generation": generation},
        )

    async def wait_retired(self) -> None:
        """Wait until every generation being retired is closed (the shutdown's last step)."""
        for records in list(self.retiring.values()):
            for record in list(records):
                await record.closed.wait()

    async def cut_calls(self, entries: list[PluginEntry]) -> dict[str, int]:
        """The shutdown's timeout ran out: cancel the calls still running on `entries` and on
        every generation being retired (each fails with 1211, the plugin gets `cancel`), give
        them a moment to unwind; how many each plugin had."""
        everything = [*entries, *(record.entry for records in self.retiring.values() for record in records)]
        cut: dict[str, int] = {}
        for entry in everything:
            if entry.inflight:
                cut[entry.config.name] = cut.get(entry.config.name, 0) + entry.inflight
                self.cancel_calls(entry)
        try:
            async with asyncio.timeout(_CANCEL_GRACE):
                for entry in everything:
                    await entry.wait_idle()
        except TimeoutError:
            pass
        return cut

    # -------------------------------------------------------------- inspection
    def annotate(self, statuses: dict[str, HealthStatus]) -> dict[str, HealthStatus]:
        """`statuses` with each running plugin's generation and calls in flight in its
        metadata, and those of generations still draining."""
        entries = self._m._entries
        for name, status in statuses.items():
            entry = entries.get(name)
            if entry is None:
                continue
            extra = {"generation": str(entry.generation), "inflight": str(entry.inflight)}
            records = self.retiring.get(name)
            if records:
                extra["draining"] = ",".join(f"{r.entry.generation}:{r.entry.inflight}" for r in records)
            statuses[name] = struct_replace(status, metadata={**status.metadata, **extra})
        return statuses
