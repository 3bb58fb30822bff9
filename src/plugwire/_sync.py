"""`PluginManager`: the blocking twin, driving one `AsyncPluginManager` on a private loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._clock import Clock
from ._codec import CodecName
from ._config import ManagerConfig, PluginConfig, SecurityConfig, TracingConfig
from ._discovery import DiscoveryReport
from ._errors import ConfigError, ErrorCode, ManagerClosedError
from ._lifecycle import ReplaceResult, ShutdownReport
from ._manager import AsyncPluginManager, PluginHandle
from ._models import ExecutionContext, HealthStatus, PluginInfo
from ._observe import ManagerMetrics, MetricsExporter, Tracing
from ._policies import BreakerListener, BreakerState, Policy
from ._reload import ReloadReport
from ._security import AuditLog, SecurityEngine
from ._sources import PluginSource
from ._types import LoggerLike, ReqT, RespT

__all__ = ["BlockingPluginHandle", "PluginManager"]

T = TypeVar("T")

_CANCEL_SETTLE = 2.0  # seconds an interrupted caller waits for its call's cancellation to land


class PluginManager(Generic[ReqT, RespT]):
    """The same API as `AsyncPluginManager`, without `await`, for scripts and threads.

    Every asyncio object lives on one private event loop in a daemon thread; calls from any
    thread are handed to it and block until done. A caller interrupted while it waits
    (Ctrl-C's `KeyboardInterrupt`, or any exception a signal handler raises) cancels its
    call, as `await` would in the async manager, so a shutdown right after does not wait for
    it. Use it as a context manager, or call `close()`, which shuts the plugins down and ends
    the thread.
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
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="plugwire-manager", daemon=True)
        self._closed = False
        self._guard = threading.Lock()  # orders submissions against close()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._thread.start()

        async def create() -> AsyncPluginManager[ReqT, RespT]:
            return AsyncPluginManager(
                request_type,
                response_type,
                config,
                logger,
                codec=codec,
                policies=policies,
                clock=clock,
                breaker_listeners=breaker_listeners,
            )

        try:
            self._async = self._call(create())
        except BaseException:
            self._stop_loop()
            raise

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T], *, closing: bool = False) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("PluginManager cannot be called from its own loop thread; use AsyncPluginManager")
        future: concurrent.futures.Future[T] | None = None
        try:
            with self._guard:
                if self._closed and not closing:
                    coro.close()
                    raise ManagerClosedError("the manager is closed")
                future = asyncio.run_coroutine_threadsafe(coro, self._loop)
                self._pending.add(future)
            return future.result()
        except BaseException:
            # Interrupted while the call runs (Ctrl-C, an exception from a signal handler).
            if future is not None and not future.done():
                self._cancel(future, coro)
            raise
        finally:
            if future is not None:
                with self._guard:
                    self._pending.discard(future)

    def _cancel(self, future: concurrent.futures.Future[Any], coro: Coroutine[Any, Any, Any]) -> None:
        """Cancel a call whose caller stopped waiting, and give the cancellation a moment to
        land on the loop (the plugin told, the call no longer in flight), so that a shutdown
        right after does not wait for it."""
        future.cancel()  # cancels the call's task on the loop
        landed = threading.Event()

        def watch() -> None:
            task = next((t for t in asyncio.all_tasks(self._loop) if t.get_coro() is coro), None)
            if task is None:
                landed.set()
            else:
                task.add_done_callback(lambda _: landed.set())

        try:
            self._loop.call_soon_threadsafe(watch)
        except RuntimeError:  # the loop is closed: nothing is left to cancel
            return
        landed.wait(_CANCEL_SETTLE)

    @property
    def async_manager(self) -> AsyncPluginManager[ReqT, RespT]:
        """The `AsyncPluginManager` this twin drives (use only on its loop)."""
        return self._async

    def start(self) -> None:
        """Register the configured plugins."""
        self._call(self._async.start())

    def register(
        self, plugin: Any | PluginSource, *, name: str | None = None, config: PluginConfig | None = None
    ) -> None:
        """See `AsyncPluginManager.register`."""
        self._call(self._async.register(plugin, name=name, config=config))

    def unregister(self, name: str) -> None:
        """See `AsyncPluginManager.unregister`."""
        self._call(self._async.unregister(name))

    def graceful_unregister(self, name: str, timeout: float | None = None) -> bool:
        """See `AsyncPluginManager.graceful_unregister`."""
        return self._call(self._async.graceful_unregister(name, timeout))

    def replace(
        self,
        name: str,
        plugin_or_source: Any = None,
        *,
        config: PluginConfig | None = None,
        drain_timeout: float | None = None,
    ) -> ReplaceResult:
        """See `AsyncPluginManager.replace`."""
        return self._call(self._async.replace(name, plugin_or_source, config=config, drain_timeout=drain_timeout))

    def reload_config(self, config: ManagerConfig | str | os.PathLike[str]) -> ReloadReport:
        """See `AsyncPluginManager.reload_config`."""
        return self._call(self._async.reload_config(config))

    def load_config(self, config: ManagerConfig | str | os.PathLike[str]) -> None:
        """See `AsyncPluginManager.load_config`."""
        self._call(self._async.load_config(config))

    def execute(self, name: str, request: ReqT, context: ExecutionContext | None = None) -> RespT:
        """See `AsyncPluginManager.execute`."""
        return self._call(self._async.execute(name, request, context))

    def execute_with_options(self, name: str, context: ExecutionContext, request: ReqT) -> RespT:
        """See `AsyncPluginManager.execute_with_options`."""
        return self._call(self._async.execute(name, request, context))

    def get_plugin(self, name: str) -> BlockingPluginHandle[ReqT, RespT]:
        """A blocking handle on a registered plugin (see `AsyncPluginManager.get_plugin`)."""

        async def lookup() -> PluginHandle[ReqT, RespT]:
            return self._async.get_plugin(name)

        return BlockingPluginHandle(self, self._call(lookup()))

    def list_plugins(self) -> dict[str, HealthStatus]:
        """See `AsyncPluginManager.list_plugins`."""

        async def snapshot() -> dict[str, HealthStatus]:
            return self._async.list_plugins()

        return self._call(snapshot())

    def health(self) -> dict[str, HealthStatus]:
        """See `AsyncPluginManager.health`."""
        return self._call(self._async.health())

    def get_metrics(self) -> ManagerMetrics:
        """See `AsyncPluginManager.get_metrics` (read on the manager's loop)."""

        async def snapshot() -> ManagerMetrics:
            return self._async.get_metrics()

        return self._call(snapshot())

    metrics = get_metrics

    @property
    def metrics_enabled(self) -> bool:
        """See `AsyncPluginManager.metrics_enabled`."""
        return self._async.metrics_enabled

    @property
    def metrics_url(self) -> str | None:
        """See `AsyncPluginManager.metrics_url`."""
        return self._async.metrics_url

    def register_metrics_exporter(self, exporter: MetricsExporter) -> None:
        """See `AsyncPluginManager.register_metrics_exporter`."""
        self._call(self._async.register_metrics_exporter(exporter))

    @property
    def tracing(self) -> Tracing | None:
        """See `AsyncPluginManager.tracing`."""
        return self._async.tracing

    def enable_tracing(self, config: TracingConfig, *, tracer_provider: Any = None) -> None:
        """See `AsyncPluginManager.enable_tracing` (run on the manager's loop)."""
        self._call(self._async.enable_tracing(config, tracer_provider=tracer_provider))

    def inject_tracing(self, context: ExecutionContext | None, operation: str) -> ExecutionContext:
        """See `AsyncPluginManager.inject_tracing` (runs on the calling thread, where the
        application's active span is)."""
        return self._async.inject_tracing(context, operation)

    def enable_plugin_security(self, config: SecurityConfig, *, exec_dir: str | None = None) -> None:
        """See `AsyncPluginManager.enable_plugin_security`."""
        self._call(self._async.enable_plugin_security(config, exec_dir=exec_dir))

    @property
    def discovery_report(self) -> DiscoveryReport | None:
        """What discovery registered and refused at its last scan (None when discovery is
        off); see `AsyncPluginManager.discovery`."""
        discovery = self._async.discovery
        return None if discovery is None else discovery.report

    def rescan(self) -> DiscoveryReport:
        """Look at the discovery folders now (see `Discovery.rescan`).

        Raises:
            ConfigError: Discovery is off (1003).
        """

        async def rescan() -> DiscoveryReport:
            discovery = self._async.discovery
            if discovery is None:
                raise ConfigError(
                    "rescan: discovery is off (plugwire.auto(), or the config's discovery section)",
                    code=ErrorCode.CONFIG_INVALID_VALUE,
                )
            return await discovery.rescan()

        return self._call(rescan())

    @property
    def audit(self) -> AuditLog | None:
        """The security audit log once enabled (its methods are thread-safe)."""
        return self._async.audit

    @property
    def security(self) -> SecurityEngine | None:
        """The security engine once enabled (see `AsyncPluginManager.security`)."""
        return self._async.security

    def circuit_breaker_state(self, name: str) -> BreakerState | None:
        """The state of a plugin's circuit breaker, read on the manager's loop (None when its
        config disables the breaker). See `AsyncPluginManager.circuit_breaker`."""

        async def read() -> BreakerState | None:
            breaker = self._async.circuit_breaker(name)
            return None if breaker is None else breaker.state

        return self._call(read())

    def __contains__(self, name: object) -> bool:
        return name in self._async

    def __len__(self) -> int:
        return len(self._async)

    def shutdown(self, timeout: float | None = None) -> ShutdownReport | None:
        """Shut the plugins down (see `AsyncPluginManager.shutdown`) and end the loop thread.

        Calls from other threads that are already running finish (or time out) as the async
        manager's shutdown allows; calls made after this point fail with `ManagerClosedError`.

        Returns:
            What the shutdown had to cut (`ShutdownReport`); None from a later call, or when
            the loop thread was already gone.
        """
        with self._guard:
            if self._closed:
                return None
            self._closed = True
        try:
            report: ShutdownReport = self._call(self._async.shutdown(timeout), closing=True)
        finally:
            self._stop_loop()
        return report

    close = shutdown

    def _stop_loop(self) -> None:
        with self._guard:
            self._closed = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        with self._guard:
            stranded = [future for future in self._pending if not future.done()]
        for future in stranded:  # their coroutines will never run again: release the callers
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(ManagerClosedError("the manager closed while the call was running"))
        self._loop.close()

    def __enter__(self) -> PluginManager[ReqT, RespT]:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BlockingPluginHandle(Generic[ReqT, RespT]):
    """A registered plugin as seen through a `PluginManager`."""

    def __init__(self, manager: PluginManager[ReqT, RespT], handle: PluginHandle[ReqT, RespT]) -> None:
        self._manager = manager
        self._handle = handle
        self.name = handle.name

    def info(self) -> PluginInfo:
        """What the plugin said about itself when it started."""
        return self._handle.info()

    def execute(self, ctx: ExecutionContext, request: ReqT) -> RespT:
        """Call the plugin through the manager's policies."""
        return self._manager._call(self._handle.execute(ctx, request))

    def close(self) -> None:
        """Unregister the plugin (see `AsyncPluginManager.unregister`)."""
        self._manager._call(self._handle.close())

    def health(self) -> HealthStatus:
        """Check the plugin's health now."""
        return self._manager._call(self._handle.health())
