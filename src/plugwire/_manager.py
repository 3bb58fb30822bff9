"""`AsyncPluginManager`: registers plugins and sends typed calls through their policies."""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, cast

from msgspec.structs import replace

from ._call import Call
from ._clock import Clock, system_clock
from ._codec import CodecName, TypedCodec
from ._config import (
    ManagerConfig,
    PluginConfig,
    SecurityConfig,
    TracingConfig,
    config_from_data,
    load_config_file,
    validate_plugin_config,
    with_host_python,
)
from ._discovery import Discovery
from ._entry import PluginEntry, check_context, connects_later
from ._errors import (
    AuthenticationError,
    ConfigError,
    ErrorCode,
    ExecutionError,
    ExporterError,
    ManagerClosedError,
    MetricsDisabledError,
    ObservabilityError,
    PluginError,
    ProtocolError,
    RequestSent,
)
from ._guard import SecurityGuard
from ._handle import PluginHandle
from ._lifecycle import Lifecycle, ReplaceResult, ShutdownReport
from ._models import ExecutionContext, HealthStatus, Plugin, PluginInfo, Transport, _request_ids
from ._observe import CallCounters, ManagerMetrics, MetricsExporter, Tracing, check_tracing_config, require_otel
from ._policies import BreakerListener, CircuitBreaker, Policy
from ._registry import PluginRegistry
from ._reload import HotReloader, Reloader, ReloadReport
from ._sdk.adapter import PluginAdapter
from ._security import AuditEvent, AuditLog, SecurityEngine
from ._sources import InProcess, PluginSource, source_for_config
from ._tasks import TaskOwner
from ._types import LoggerLike, ReqT, RespT

if TYPE_CHECKING:
    from ._observe.prometheus import PrometheusExporter
    from ._transports.goplugin import GoPluginTransport

__all__ = ["AsyncPluginManager", "PluginHandle"]

_EMPTY_CONTEXT = ExecutionContext()
_clock = time.perf_counter  # what a call's duration is measured with (metrics on)
_bucket = bisect.bisect_left  # its bucket: the first bound not below it (Prometheus's `le`)
_EXPORTER_CLOSE_LIMIT = 10.0  # seconds the manager waits for one exporter's `aclose`


class AsyncPluginManager(Generic[ReqT, RespT]):
    """Registers plugins and calls them with typed requests.

    Args:
        request_type: The type every request is (a dataclass, msgspec Struct, TypedDict,
            pydantic model or built-in type).
        response_type: The type every response is decoded and validated into.
        config: Plugins to register on start, and global settings.
        logger: Any logger with `debug/info/warning/error` (stdlib, structlog, loguru);
            defaults to the stdlib logger `plugwire.manager`.
        codec: Wire encoding of payloads: "msgpack" (default) or "json".
        policies: Extra handler wrappers run around every call, outermost first.
        clock: Where policies and health monitors read time and sleep (default: the
            system clock; `plugwire.testing.FakeClock` in tests).
        breaker_listeners: Told about every state change of every plugin's circuit breaker.

    Use it as `async with manager:`; that registers the configured plugins and shuts
    everything down on exit.
    """

    def __init__(
        self,
        request_type: type[ReqT],
        response_type: type[RespT],
        config: ManagerConfig | None = None,
        logger: LoggerLike | None = None,
        *,
        codec: CodecName = "msgpack",
        policies: Sequence[Policy] = (),
        clock: Clock | None = None,
        breaker_listeners: Sequence[BreakerListener] = (),
    ) -> None:
        self.request_type = request_type
        self.response_type = response_type
        if config is not None:
            config_from_data(config.to_dict())  # built in Python: check it as a file would be
            if logger is None:  # the config's log_level sets the stdlib loggers plugwire owns
                logging.getLogger("plugwire").setLevel(config.log_level.upper())
        self.config = config or ManagerConfig()
        self.logger: LoggerLike = logger or logging.getLogger("plugwire.manager")
        self._request_codec: TypedCodec[ReqT] = TypedCodec(request_type, codec, role="request")
        self._response_codec: TypedCodec[RespT] = TypedCodec(response_type, codec, role="response")
        self._policies = tuple(policies)
        self.clock: Clock = clock or system_clock
        self._breaker_listeners = tuple(breaker_listeners)
        self._registry = PluginRegistry((None, p) for p in self.config.plugins)
        #: The running plugins by name (the registry's own dict: read on every call, no lock).
        self._entries = self._registry.entries
        #: `channel(name)`'s channels, one per name (each follows its name's transport).
        self._channels: dict[str, Any] = {}
        self._closing = False
        self._shutdown_task: asyncio.Task[ShutdownReport] | None = None
        #: The manager's own task: the shutdown (it runs to its end if its caller is cancelled).
        self._tasks = TaskOwner("plugwire-manager")
        #: Metrics (docs/observability.md): counters per plugin while on, the exporters that
        #: read them, and the snapshot taken when the shutdown had drained the calls.
        self._metrics_on = self.config.metrics.enabled
        self._exporters: list[MetricsExporter] = []
        self._final_metrics: ManagerMetrics | None = None
        #: The Prometheus endpoint of the config's `metrics.prometheus`, started with the manager
        #: (made here, so that a missing extra fails now rather than at start).
        self._prometheus: PrometheusExporter | None = None
        if self.config.metrics.prometheus.enabled:
            from ._observe.prometheus import exporter_from_config  # prometheus-client only when asked for

            self._prometheus = exporter_from_config(self.config.metrics.prometheus)
        self._guard = SecurityGuard(
            self.config, self.logger, lambda: [e.config for e in self._entries.values()], self._refuse
        )
        #: Tracing (docs/observability.md), None while off; the config's `tracing.enabled`
        #: turns it on when the manager starts (or registers its first plugin).
        self._tracing: Tracing | None = None
        if self.config.tracing.enabled:
            require_otel()  # a missing extra fails here, not at the first call
        #: Generations: replacement, draining, what a shutdown cut (docs/lifecycle.md).
        self._lifecycle = Lifecycle(self)
        #: Configuration reloads, and the file watcher of `hot_reload` once started.
        self._reloader = Reloader(self)
        self._hot_reload: HotReloader | None = None
        #: Plugins found in folders (docs/lifecycle.md, "Discovery"), registered on start.
        self._discovery = Discovery(self, self.config.discovery) if self.config.discovery.enabled else None

    # ----------------------------------------------------------------- lifecycle
    def _queue(self, source: PluginSource, config: PluginConfig) -> None:
        """Register `source` on start (used by the builders)."""
        self._registry.pending.append((source, validate_plugin_config(config, f"plugin {config.name!r}")))

    async def start(self) -> None:
        """Register every plugin from the config (and builder); idempotent.

        Raises:
            ManagerClosedError: The manager was shut down (1208): build a new one.
        """
        if self._closing:
            raise ManagerClosedError("the manager is shut down: it cannot be started again; build a new one")
        if self._registry.started:
            return
        pending = self._registry.take_pending()
        await self._guard.ensure()
        await self._tracing_from_config(self.config.tracing)
        if self._prometheus is not None and not any(e is self._prometheus for e in self._exporters):
            await self.register_metrics_exporter(self._prometheus)  # a port in use fails the start (2103)
        for source, config in pending:
            await self._register_config(config, source)
        hot = self.config.hot_reload
        if hot.enabled and self._hot_reload is None:  # watch the config file from now on
            self._hot_reload = HotReloader(self, hot.file, hot.debounce)
            await self._hot_reload.start()
        if self._discovery is not None:
            await self._discovery.start()

    async def __aenter__(self) -> AsyncPluginManager[ReqT, RespT]:
        try:
            await self.start()
        except BaseException:
            await self.shutdown()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    async def shutdown(self, timeout: float | None = None) -> ShutdownReport:
        """Stop taking calls, wait for in-flight calls, then close every plugin once.

        Args:
            timeout: Seconds to wait for in-flight calls before closing anyway; defaults to
                the config's `shutdown_timeout`. Idempotent: later calls wait for the first.

        Returns:
            What had to be cut: per plugin, the calls still running at the timeout (also
            logged). Every call returns the same report.
        """
        if self._shutdown_task is None:
            self._closing = True
            limit = self.config.shutdown_timeout if timeout is None else timeout
            self._shutdown_task = self._tasks.start(self._shutdown(limit), name="shutdown", shielded=True)
        return await asyncio.shield(self._shutdown_task)

    aclose = shutdown

    async def _shutdown(self, timeout: float) -> ShutdownReport:
        if self._hot_reload is not None:  # no reload may start during the shutdown
            await self._hot_reload.aclose()
        if self._discovery is not None:  # no plugin is added or replaced from here on
            await self._discovery.aclose()
        entries = await self._registry.clear()
        # Monitors stop first: no health check or restart may race the shutdown.
        await asyncio.gather(*(entry.monitor.aclose() for entry in entries))
        cut: dict[str, int] = {}
        try:
            async with asyncio.timeout(timeout):  # one deadline for all: no waiter outlives it
                for entry in entries:
                    await entry.wait_idle()
                await self._lifecycle.wait_retired()  # generations being replaced drain too
        except TimeoutError:
            cut = await self._lifecycle.cut_calls(entries)  # cancelled: 1211, and the plugins get `cancel`
            self._log(
                "warning",
                f"shutdown: in-flight calls still running after {timeout:g}s; cancelled them "
                f"({', '.join(f'{name}: {count}' for name, count in sorted(cut.items()))})",
            )
        if self._metrics_on:  # what `get_metrics()` and the exporters' last export report from now on
            self._final_metrics = self._snapshot(entries)
        await asyncio.gather(*(self._close_entry(entry) for entry in entries))
        await asyncio.gather(*(self._close_exporter(exporter) for exporter in self._exporters))
        if self._tracing is not None:  # after the plugins: every call's spans have ended
            await self._tracing.aclose()
        await self._guard.aclose()
        await self._tasks.aclose()  # (this task itself is not waited for)
        await self._lifecycle.wait_retired()
        self._log("info", f"shutdown complete ({len(entries)} plugins closed)")
        return ShutdownReport(plugins=len(entries), cut=cut)

    async def _drain(self, entry: PluginEntry, timeout: float | None) -> bool:
        """Wait (on an event) until `entry` has no call in flight; False if `timeout` ran out."""
        if not entry.inflight:
            return True
        try:
            async with asyncio.timeout(timeout):
                await entry.wait_idle()
        except TimeoutError:
            self._log(
                "warning", f"plugin {entry.config.name!r}: {entry.inflight} calls still running after {timeout:g}s"
            )
            return False
        return True

    async def _close_entry(self, entry: PluginEntry) -> None:
        await entry.monitor.aclose()
        try:
            await entry.transport.aclose()
        except Exception as exc:
            self._log("error", f"plugin {entry.config.name!r} failed to close: {exc}")
        self._guard.record(AuditEvent.STOPPED, entry.config.name, transport=entry.config.transport.value)

    # -------------------------------------------------------------- registration
    async def register(
        self,
        plugin: Plugin[ReqT, RespT] | PluginSource | Any,
        *,
        name: str | None = None,
        config: PluginConfig | None = None,
    ) -> None:
        """Register a plugin and start it.

        Args:
            plugin: A `Plugin` object (runs in-process) or a source from
                `plugwire.in_process()` and its siblings.
            name: The name to call it by; defaults to `config.name`, else `plugin.info().name`.
            config: Its settings; defaults to the README's defaults.

        Raises:
            PluginAlreadyRegisteredError: A plugin of that name exists (1010).
            ConfigError: The name or config is invalid.
        """
        source = plugin if isinstance(plugin, PluginSource) else InProcess(plugin)
        if name is None:
            name = config.name if config is not None else None
        if name is None and isinstance(source, InProcess):
            name = PluginAdapter(source.plugin).info().name  # coded errors for a non-plugin
        if not name:
            raise ConfigError("register: a name is required for this plugin", code=ErrorCode.CONFIG_MISSING_FIELD)
        full = validate_plugin_config(source.configure(name, config or PluginConfig(name=name)), f"plugin {name!r}")
        await self._register_config(full, source)

    async def _register_config(self, config: PluginConfig, source: PluginSource | None) -> None:
        self._check_open()
        config = with_host_python(config)  # a config's `executable: sys.executable`
        await self._guard.ensure()
        await self._tracing_from_config(self.config.tracing)
        name = config.name
        if not await self._registry.reserve(config):  # known by name (calls get 1202), never started
            self._log("info", f"registered plugin {name!r} as disabled; it is not started")
            return
        try:
            entry = await self._start_entry(config, source)
            async with self._registry.lock:
                closing = self._closing  # shutdown began while the plugin was starting
                if not closing:
                    if self._tracing is not None:  # (in the same step as the insertion: none is missed)
                        self._tracing.instrument(entry)
                    self._entries[name] = entry
                    entry.monitor.start()
                    self._lifecycle.registered(name, source)  # what `replace(name)` starts again
            if closing:
                await entry.transport.aclose()
                raise ManagerClosedError("the manager is shut down")
        finally:
            self._registry.release(name)
        if not entry.monitor.connecting:  # else announced once it connects (`_start_entry`)
            self._announce(config, entry.info)

    def _announce(self, config: PluginConfig, info: PluginInfo) -> None:
        """Audit and log a plugin that started (or, registered while down, connected)."""
        name = config.name
        self._guard.record(AuditEvent.STARTED, name, transport=config.transport.value, version=info.version)
        self._log("info", f"registered plugin {name!r} ({config.transport.value}, {info.name} {info.version})")

    async def _start_entry(self, config: PluginConfig, source: PluginSource | None) -> PluginEntry:
        """Check, start and wrap one plugin: its transport, health monitor, breaker and pipeline."""
        await self._guard.admit(config)  # under strict, refuses before any transport exists
        transport = (source or source_for_config(config)).create_transport(config, self.request_type)
        self._guard.watch(transport, config)
        if self._tracing is not None:  # its processes start with the tracing environment
            self._tracing.prepare(transport, config.name)
        unreachable: PluginError | None = None
        try:
            info = await transport.start()
        except PluginError as exc:
            if not connects_later(config, exc):
                await transport.aclose()
                raise
            unreachable, info = exc, PluginInfo(name=config.name)
        except BaseException:
            await transport.aclose()
            raise
        entry = PluginEntry.assemble(
            config,
            transport,
            info,
            clock=self.clock,
            logger=self.logger,
            policies=self._policies,
            breaker_listeners=self._breaker_listeners,
            counters=CallCounters(self.config.metrics.buckets) if self._metrics_on else None,
        )
        if unreachable is not None:
            entry.monitor.begin_connecting(unreachable)
            entry.monitor.on_connect = lambda connected: self._announce(config, connected)
            self._log(
                "warning",
                f"plugin {config.name!r} cannot be reached yet ({unreachable.message}); connecting in the background",
            )
        return entry

    async def unregister(self, name: str) -> None:
        """Remove a plugin at once and close it (in-flight calls may fail).

        Raises:
            PluginNotFoundError: No plugin of that name (1201).
        """
        entry = await self._registry.remove(name)
        if entry is None:
            return
        await self._close_entry(entry)
        self._log("info", f"unregistered plugin {name!r}")

    async def graceful_unregister(self, name: str, timeout: float | None = None) -> bool:
        """Stop routing new calls to a plugin, wait for its in-flight calls, then close it.

        The README's zero-downtime step: new calls fail with `PluginNotFoundError` at once
        (register the replacement under the same name right after), while calls already
        running finish. Waiting is on an event, not a polling loop.

        Args:
            name: The plugin to remove.
            timeout: Seconds to wait for in-flight calls; `None` waits as long as they take.

        Returns:
            True if every in-flight call finished in time, False if the plugin was closed
            with calls still running.

        Raises:
            PluginNotFoundError: No plugin of that name (1201).
        """
        entry = await self._registry.remove(name)
        if entry is None:
            return True
        drained = await self._drain(entry, timeout)
        await self._close_entry(entry)
        self._log("info", f"unregistered plugin {name!r} after draining" if drained else f"unregistered {name!r}")
        return drained

    async def replace(
        self,
        name: str,
        plugin_or_source: Plugin[ReqT, RespT] | PluginSource | Any = None,
        *,
        config: PluginConfig | None = None,
        drain_timeout: float | None = None,
    ) -> ReplaceResult:
        """Upgrade a running plugin without a gap: a new generation starts beside the old.

        The new generation is started (checked against the whitelist in force now), must
        answer its first health check as healthy, and then takes every new call at once;
        calls already running on the old generation finish there, and it is closed when
        they have (waiting on an event). Calls still running after `drain_timeout` are
        cancelled: they fail with `DrainCancelledError` (1211) and the plugin gets `cancel`.
        Replacements of one name run one at a time. See docs/lifecycle.md.

        Args:
            name: The running plugin.
            plugin_or_source: What to start: a `Plugin` object, a source
                (`plugwire.subprocess(...)`, ...), or None to start what runs now again
                (e.g. after its binary was upgraded on disk).
            config: The new generation's settings; default: the running ones.
            drain_timeout: Seconds the old generation's calls get; default: `shutdown_timeout`.

        Returns:
            The generations, and how many calls were drained, cancelled or cut.

        Raises:
            ReplacementError: The new generation failed to start or is not healthy (1210;
                its cause is why); the old one keeps serving and nothing changed.
            PluginNotFoundError: No plugin of that name (1201). PluginDisabledError: 1202.
            ConfigError: `config` names another plugin or is invalid.
            ManagerClosedError: The manager is shut down (1208).
        """
        return await self._lifecycle.replace(name, plugin_or_source, config=config, drain_timeout=drain_timeout)

    async def reload_config(self, config: ManagerConfig | str | os.PathLike[str]) -> ReloadReport:
        """Apply a changed configuration while running, without a failed call.

        The new config (a `ManagerConfig` or a file path) is validated whole first: if it is
        invalid nothing changes and the error names the file, path and line. Then, by plugin
        name: new plugins are registered, removed ones drained and closed, a changed launch
        setting (executable, args, env, work_dir, endpoint, auth, transport, connection)
        starts a new generation (`replace`), and a change of policies only (timeouts, retry,
        breaker, rate limit, health checks) is applied in place, with the same processes.
        Plugins registered in code are left alone. Reloads run one at a time; those asked for
        meanwhile coalesce into one reload of the latest config. See docs/lifecycle.md.

        Returns:
            What happened to each plugin, and why (`failed` lists what could not be applied).

        Raises:
            ConfigFileError: The file is missing, unreadable or malformed (17xx).
            ConfigError: The config is invalid (10xx), naming the path.
            ManagerClosedError: The manager is shut down (1208).
        """
        return await self._reloader.reload(config)

    async def load_config(self, config: ManagerConfig | str | os.PathLike[str]) -> None:
        """Register every plugin of a config (a `ManagerConfig` or a file path).

        Its `tracing` section turns tracing on when enabled; its other sections (security,
        metrics, discovery, hot reload, ...) belong to the config the manager was built with:
        any that differ are named in a warning and not applied (`reload_config` reports them
        as `not_applied` too).
        """
        if isinstance(config, ManagerConfig):
            config_from_data(config.to_dict())  # built in Python: check it as a file would be
            loaded = config
        else:
            loaded = await asyncio.to_thread(load_config_file, config)  # a large file never stalls the loop
        await self._tracing_from_config(loaded.tracing)
        ignored = [section for section in self._reloader.other_sections(loaded) if section != "tracing"]
        if ignored:
            self._log(
                "warning",
                f"load_config: registering its plugins; its {', '.join(ignored)} settings differ from the "
                "manager's and are not applied (give them to the manager's own config or builder)",
            )
        source = "" if isinstance(config, ManagerConfig) else os.fspath(config)
        self._guard.record(AuditEvent.CONFIG_CHANGED, None, file=source, plugins=[p.name for p in loaded.plugins])
        if not self._registry.started:
            self._registry.pending.extend((None, p) for p in loaded.plugins)
            return
        for plugin in loaded.plugins:
            await self._register_config(plugin, None)

    # ---------------------------------------------------------------------- calls
    async def execute(self, name: str, request: ReqT, context: ExecutionContext | None = None) -> RespT:  # noqa: PLR0915 (one frame per call, on purpose)
        """Send one typed request to a plugin and return its validated response.

        Raises:
            PluginNotFoundError: 1201, no plugin of that name.
            PluginDisabledError: 1202, the plugin is disabled.
            ManagerNotStartedError: 1209, no such plugin, and the manager was never
                started to register the plugins of its config.
            RequestValidationError: 1205, the request cannot be encoded or the plugin
                refused its shape.
            ResponseValidationError: 1206, the plugin's answer has the wrong shape.
            ExecutionError: 1203, the plugin raised.
            PluginTimeoutError: 1204, no answer within the timeout.
            OutcomeUnknownError: 1207, the request reached the plugin, which failed (its
                process crashed, its connection was cut) before answering.
            ManagerClosedError: 1208, the manager is shut down.
            CircuitOpenError: 1401, the plugin's circuit breaker is open.
            RateLimitedError: 1501, the plugin's rate limit refused the call.
            PluginUnavailableError: 1602, the plugin is offline.
            PluginConnectingError: 1603, the plugin has not been reached yet.
            TransportError: 1300-1399, the connection to the plugin failed; also
                ProcessError (1900-1999) and ProtocolError (2000-2099) from a subprocess.
        """
        entry = self._entries.get(name)
        if entry is None:
            self._check_open()
            entry = self._registry.lookup(name)  # raises: disabled (1202), not started (1209), not found (1201)
        # With metrics on, every call from here on ends in the counters: succeeded, failed
        # (by code) or cancelled, with its duration.
        counters = entry.counters
        if entry.monitor.offline:
            error: PluginError = entry.monitor.unavailable()
            if counters is not None:
                counters.failed(error.code, 0.0)
            raise error
        started = _clock() if counters is not None else 0.0
        entry.inflight += 1
        try:
            if context is not None and (context.headers or context.metadata):
                check_context(context, name)
            ctx = context or _EMPTY_CONTEXT
            if not ctx.request_id:  # `ctx.with_request_id()` inlined: a frame fewer per call
                ctx = replace(ctx, request_id=next(_request_ids.counter).to_bytes(16, "big").hex())
            transport = entry.transport
            payload = self._request_codec.encode(request) if transport.wants_bytes else request
            # The attempt's timeout as the timeout policy will set it, so that it need not
            # copy the call to do so (it still cuts it to an overall deadline, which copies).
            timeout = entry.attempt_timeout if ctx.timeout is None else ctx.timeout
            raw = await entry.handler(Call(name, payload, ctx, self._request_codec.codec, timeout))
            result: RespT = self._response_codec.decode(raw) if transport.wants_bytes else raw
        except PluginError as exc:
            if exc.plugin is None:
                exc.plugin = name
            if isinstance(exc, AuthenticationError):
                self._guard.record(AuditEvent.AUTH_FAILURE, name, code=exc.code, error=exc.message)
            if counters is not None:
                counters.failed(exc.code, _clock() - started)
            raise
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit) as exc:
            if self._lifecycle.cut and isinstance(exc, asyncio.CancelledError):  # a drain's cut (1211)?
                drained = self._lifecycle.drain_error(name)
                if drained is not None:
                    if counters is not None:
                        counters.failed(drained.code, _clock() - started)
                    raise drained from None
            if counters is not None:
                counters.cancelled += 1
            raise
        except Exception as exc:  # from a user's policy or transport, at an unknown point of the call
            failure = ExecutionError(f"{type(exc).__name__}: {exc}", plugin=name, request_sent=RequestSent.MAYBE)
            if counters is not None:
                counters.failed(failure.code, _clock() - started)
            raise failure from exc
        finally:
            entry.inflight -= 1
            if not entry.inflight and entry.idle_waiters:
                entry.wake_idle()
        if counters is not None:  # `counters.succeeded(...)` inlined: no frame per counted call
            elapsed = _clock() - started
            counters.successes += 1
            counters.buckets[_bucket(counters.bounds, elapsed)] += 1
            counters.seconds += elapsed
        return result

    async def execute_with_options(self, name: str, context: ExecutionContext, request: ReqT) -> RespT:
        """The README's `ExecuteWithOptions`: `execute` with an explicit context."""
        return await self.execute(name, request, context)

    # ---------------------------------------------------------------- inspection
    def get_plugin(self, name: str) -> PluginHandle[ReqT, RespT]:
        """A handle on a registered plugin (its info, and calls through this manager).

        Raises:
            PluginNotFoundError: 1201.
        """
        return PluginHandle(self, name, self._registry.lookup(name).info)

    def list_plugins(self) -> dict[str, HealthStatus]:
        """Each registered plugin's status as its health monitor last saw it (no new checks);
        plugins disabled in config are listed as offline."""
        running = {name: entry.monitor.snapshot() for name, entry in self._entries.items()}
        return self._registry.statuses(self._lifecycle.annotate(running))

    async def health(self) -> dict[str, HealthStatus]:
        """Check every plugin now, concurrently, each bounded by its health-check timeout.

        A check already running for a plugin (its monitor's) is joined, not repeated; the
        result moves the plugin's status as a scheduled check would (see docs/resilience.md).
        """
        monitors = {name: entry.monitor for name, entry in self._entries.items()}
        results = await asyncio.gather(*(monitor.check() for monitor in monitors.values()))
        return self._registry.statuses(self._lifecycle.annotate(dict(zip(monitors, results, strict=True))))

    async def _check(self, name: str) -> HealthStatus:
        return await self._registry.lookup(name).monitor.check()

    def channel(self, name: str) -> Any:
        """A managed `grpc.aio.Channel` to a go-plugin plugin, for stubs of its own services
        (`kv_pb2_grpc.KVStub(manager.channel("kv"))`).

        The channel follows the name: each RPC goes to the plugin's live process, whatever
        restarted it (a crash, a health check, `replace`, a config reload); an RPC started
        while it restarts waits for the new process (at most its `timeout`, else
        `connection.connection_timeout`). The plugin's supervision and security apply (its
        processes are the verified, supervised ones); the call policies (rate limit,
        breaker, retry) apply to `execute`, not to these RPCs. Use it on this manager's
        event loop (grpc.aio channels are bound to one). See docs/go-plugin.md.

        Raises:
            PluginNotFoundError: No plugin has that name (1201), also at each RPC once it is
                unregistered.
            ProtocolError: The plugin is not a go-plugin plugin (2038).
        """
        self._go_transport(name)  # refuse now, not at the first RPC
        channel = self._channels.get(name)
        if channel is None:
            from ._transports._gochannel import PluginChannel  # grpc, loaded when asked for

            channel = self._channels[name] = PluginChannel(name, lambda: self._go_transport(name))
        return channel

    def _go_transport(self, name: str) -> GoPluginTransport:
        transport = self._registry.lookup(name).transport
        if transport.kind is not Transport.GO_PLUGIN:
            raise ProtocolError(
                f"plugin {name!r} is a {transport.kind.value} plugin: only go-plugin plugins "
                "(plugwire.goplugin(...)) give a managed gRPC channel",
                code=ErrorCode.GO_NO_CHANNEL,
                plugin=name,
            )
        return cast("GoPluginTransport", transport)

    def circuit_breaker(self, name: str) -> CircuitBreaker | None:
        """The circuit breaker of a registered plugin (None when its config disables it).

        Its `state`, `transitions` and `trips` show what it did; `listeners` can be added to.

        Raises:
            PluginNotFoundError: 1201.
        """
        return self._registry.lookup(name).breaker

    # ------------------------------------------------------------------ metrics
    @property
    def metrics_enabled(self) -> bool:
        """Whether calls are counted (`metrics.enabled`, `with_metrics()`, or an exporter)."""
        return self._metrics_on

    def get_metrics(self) -> ManagerMetrics:
        """The README's `GetMetrics()`: every running plugin's counters, latency histogram
        and health, and the manager-level totals, as one frozen snapshot.

        Cheap enough to call every second (no health check is made, no lock is taken: it
        reads the counters the calls add to). After `shutdown` it returns the snapshot taken
        once the in-flight calls had ended.

        Raises:
            MetricsDisabledError: Metrics are off (2101): turn them on with
                `with_metrics()`, the config's `metrics.enabled`, or an exporter.
        """
        if not self._metrics_on:
            raise MetricsDisabledError(
                "metrics are off: turn them on with with_metrics(), the config's metrics.enabled: true, "
                "or register_metrics_exporter()"
            )
        if self._final_metrics is not None:
            return self._final_metrics
        return self._snapshot(self._entries.values())

    # The README's Go name, for those who look for it.
    metrics = get_metrics

    def _snapshot(self, entries: Any) -> ManagerMetrics:
        draining = self._lifecycle.draining_calls()
        plugins = {
            entry.config.name: entry.metrics(draining.get(entry.config.name, 0))
            for entry in entries
            if entry.counters is not None
        }
        reloads = self._reloader
        return ManagerMetrics.of(
            self.config.metrics.buckets,
            plugins,
            config_reloads=reloads.count,
            config_reload_failures=reloads.failed,
        )

    def _enable_metrics(self) -> None:
        """Count calls from now on, for every plugin running and every one registered later."""
        if self._metrics_on:
            return
        self._metrics_on = True
        for entry in self._entries.values():
            entry.count_calls(CallCounters(self.config.metrics.buckets))
        self._log("info", "metrics enabled")

    @property
    def metrics_url(self) -> str | None:
        """Where the Prometheus endpoint of the config's `metrics.prometheus` serves the series
        (`http://127.0.0.1:9464/metrics`; the port picked when the config said 0), while it
        runs; None without one, before `start` and after `shutdown`."""
        return self._prometheus.url if self._prometheus is not None else None

    async def register_metrics_exporter(self, exporter: MetricsExporter) -> None:
        """Start `exporter` on this manager's metrics (README `RegisterMetricsExporter`).

        Turns metrics on if they were off. The exporter reads `get_metrics()` when it needs
        numbers (a scrape, its export timer), never on the call path, and is closed when the
        manager shuts down (after the last in-flight call, so its last export has them all).

        Args:
            exporter: A `PrometheusExporter`, an `OTLPExporter`, or any object with
                `async start(source)` and `async aclose()` (`plugwire.observe.MetricsExporter`).

        Raises:
            ConfigError: `exporter` is not an exporter (1002).
            ObservabilityError: It is registered already (2104).
            ExporterError: It could not start, e.g. its port is in use (2102, 2103).
            ManagerClosedError: The manager is shut down (1208).
        """
        if not isinstance(exporter, MetricsExporter):
            raise ConfigError(
                f"register_metrics_exporter: expected an object with async start(source) and aclose(), "
                f"got {type(exporter).__name__}",
                code=ErrorCode.CONFIG_WRONG_TYPE,
            )
        self._check_open()
        if any(known is exporter for known in self._exporters):
            raise ObservabilityError(
                f"{type(exporter).__name__} is registered already", code=ErrorCode.EXPORTER_ALREADY_REGISTERED
            )
        self._enable_metrics()
        try:
            await exporter.start(self.get_metrics)
        except PluginError:
            raise
        except Exception as exc:
            raise ExporterError(f"{type(exporter).__name__} failed to start: {type(exc).__name__}: {exc}") from exc
        self._exporters.append(exporter)
        if self._closing:  # shut down while it started: it must not outlive the manager
            await self._close_exporter(exporter)
            raise ManagerClosedError("the manager is shut down")

    async def _close_exporter(self, exporter: MetricsExporter) -> None:
        """Close one exporter, bounded; a failure is logged, never raised into the shutdown."""
        try:
            async with asyncio.timeout(_EXPORTER_CLOSE_LIMIT):
                await exporter.aclose()
        except TimeoutError:
            self._log("error", f"{type(exporter).__name__} did not close within {_EXPORTER_CLOSE_LIMIT:g}s")
        except Exception as exc:
            self._log("error", f"{type(exporter).__name__} failed to close: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ tracing
    @property
    def tracing(self) -> Tracing | None:
        """The tracing of this manager's calls while it is on (its settings, provider and
        `export_errors`), else None."""
        return self._tracing

    async def enable_tracing(self, config: TracingConfig, *, tracer_provider: Any = None) -> None:
        """Trace every call from now on (README `EnableTracing`; see docs/observability.md).

        Each `execute` gets a span, each attempt a child span whose W3C `traceparent` the
        plugin receives. With `config.endpoint` set, plugwire exports the spans itself (its
        own `TracerProvider`, sampled at `sample_rate`, shut down with the manager); without
        it they go to the application's provider (`tracer_provider`, default the global
        one), which then decides sampling and export. Running plugins are traced at once;
        subprocess plugins get the tracing environment (`PLUGWIRE_TRACING=1`, `OTEL_*`) in
        the processes they start from now on.

        A coroutine because it changes what the manager's calls run (on its loop); the
        blocking `PluginManager.enable_tracing` runs it there.

        Args:
            config: The settings (`enabled` is implied).
            tracer_provider: An OpenTelemetry `TracerProvider` of the application to make
                the spans with instead of the global one (only without `config.endpoint`).

        Raises:
            MissingDependencyError: `plugwire[otel]` is not installed (1011).
            ConfigError: A bad setting, naming it (`tracing.endpoint`, `tracing.sample_rate`).
            ObservabilityError: Tracing is on already (2105).
            ManagerClosedError: The manager is shut down (1208).
        """
        self._check_open()
        checked = check_tracing_config(config)
        if self._tracing is not None:
            raise ObservabilityError(
                "tracing is enabled already (by enable_tracing() or the config's tracing.enabled)",
                code=ErrorCode.TRACING_ALREADY_ENABLED,
            )
        tracing = Tracing(checked, self.logger, tracer_provider=tracer_provider)
        self._tracing = tracing
        for entry in self._entries.values():
            tracing.instrument(entry)
        where = tracing.traces_url or "the application's tracer provider"
        self._log("info", f"tracing enabled: spans go to {where}")

    async def _tracing_from_config(self, config: TracingConfig) -> None:
        """Turn tracing on as a config's `tracing.enabled` says (once; a later file's section
        does not replace tracing that is on)."""
        if config.enabled and self._tracing is None:
            await self.enable_tracing(config)

    def inject_tracing(self, context: ExecutionContext | None, operation: str) -> ExecutionContext:
        """A copy of `context` (or a new one) that joins the caller's trace (README `InjectTracing`).

        Its `traceparent` is the caller's active OpenTelemetry span (unless it has one
        already), so the call's spans are children of it wherever the context is used later
        (a queue, a worker, a thread the caller's OpenTelemetry context does not reach);
        `operation` names the call's execute span (kept in `metadata["plugwire.operation"]`).
        A call made directly inside the caller's span joins it without this. No span is
        started here, so none can be left open. While tracing is off `context` is returned
        unchanged (a new empty one for None): the same code runs with tracing on or off.
        """
        tracing = self._tracing
        if tracing is None:
            return context if context is not None else ExecutionContext()
        return tracing.inject(context, operation)

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __len__(self) -> int:
        return len(self._registry)

    @property
    def discovery(self) -> Discovery | None:
        """Discovery (`plugwire.auto()`, the config's `discovery` section): its `report` of
        what was registered and refused, `rescan()` and `wait_for()`; None when off."""
        return self._discovery

    # ------------------------------------------------------------------ security
    @property
    def audit(self) -> AuditLog | None:
        """The security audit log (`query`, `flush`, `verify`, `record`), once enabled."""
        return self._guard.audit

    @property
    def security(self) -> SecurityEngine | None:
        """The security engine (whitelist, policy, launch hooks), once enabled."""
        return self._guard.engine

    async def enable_plugin_security(self, config: SecurityConfig, *, exec_dir: str | None = None) -> None:
        """Turn on the whitelist, policy and audit log (the README's `EnablePluginSecurity`).

        Plugins already registered are checked at once; under `strict` any that the
        whitelist refuses are drained and stopped. With `watch_config`, whitelist changes
        are applied within a second. A config with `enabled: false` turns security off again
        (the config's own `security` section then no longer decides).

        Args:
            config: The security settings (see docs/security.md).
            exec_dir: Where verified private copies of plugin files are kept (default: a
                private temporary folder; set it where /tmp is mounted noexec).

        Raises:
            SecurityError: The whitelist is malformed or the audit log cannot be opened.
        """
        await self._guard.enable(config, exec_dir=exec_dir)

    async def _refuse(self, name: str, config: PluginConfig, reason: str) -> None:
        """Drain and stop a running plugin that the whitelist no longer allows."""
        entry = await self._registry.remove_if(name, config)
        if entry is None:
            return
        await self._drain(entry, self.config.shutdown_timeout)
        await self._close_entry(entry)
        self._log("warning", f"stopped plugin {name!r}: {reason}")

    # ------------------------------------------------------------------- helpers
    def _check_open(self) -> None:
        if self._closing:
            raise ManagerClosedError("the manager is shut down")

    def _log(self, level: str, message: str) -> None:
        try:
            getattr(self.logger, level)(message)
        except Exception:  # a broken logger must never break the host
            logging.getLogger("plugwire.manager").exception("the configured logger failed")
