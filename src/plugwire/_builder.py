"""Builders: `simple()`, `development()`, `production()` and `auto()` — the README's fluent
Simple API."""

from __future__ import annotations

import os
from typing import Any, Generic, Literal, Self, TypeVar

import msgspec

from ._clock import Clock
from ._config import (
    CircuitBreakerConfig,
    ConnectionConfig,
    DiscoveryConfig,
    HealthCheckConfig,
    ManagerConfig,
    MetricsConfig,
    PluginConfig,
    RateLimitConfig,
    RetryConfig,
    SecurityAuditConfig,
    SecurityConfig,
    TracingConfig,
)
from ._errors import ConfigError, ErrorCode
from ._manager import AsyncPluginManager
from ._models import SecurityPolicy
from ._sources import InProcess, PluginSource
from ._sync import PluginManager
from ._types import LoggerLike, ReqT, RespT

__all__ = ["ManagerBuilder", "auto", "development", "production", "simple"]

Profile = Literal["simple", "development", "production"]
SectionT = TypeVar(
    "SectionT",
    CircuitBreakerConfig,
    RetryConfig,
    RateLimitConfig,
    HealthCheckConfig,
    MetricsConfig,
    TracingConfig,
    DiscoveryConfig,
)

# How the profiles differ (README: development = verbose logging and longer timeouts;
# production = shorter timeouts). Anything not listed keeps the README's defaults.
_PROFILES: dict[Profile, dict[str, Any]] = {
    "simple": {
        "log_level": "info",
        "request_timeout": 30.0,
        "connection_timeout": 10.0,
        "health_interval": 30.0,
        "metrics": False,
    },
    "development": {
        "log_level": "debug",
        "request_timeout": 120.0,
        "connection_timeout": 30.0,
        "health_interval": 60.0,
        "metrics": False,
    },
    "production": {
        "log_level": "warning",
        "request_timeout": 10.0,
        "connection_timeout": 5.0,
        "health_interval": 15.0,
        "metrics": True,
    },
}


class ManagerBuilder(Generic[ReqT, RespT]):
    """Collects plugins and settings, then builds a manager. Each `with_*` returns the builder."""

    def __init__(
        self,
        request_type: type[ReqT],
        response_type: type[RespT],
        profile: Profile,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.request_type = request_type
        self.response_type = response_type
        self.profile = profile
        settings = _PROFILES[profile]
        self._log_level: str = settings["log_level"]
        self._request_timeout: float = settings["request_timeout"]
        self._connection_timeout: float = settings["connection_timeout"]
        self._health_interval: float = settings["health_interval"]
        self._metrics = MetricsConfig(enabled=settings["metrics"])
        self._logger: LoggerLike | None = None
        self._plugins: list[tuple[PluginSource, str, PluginConfig | None]] = []
        self._security = SecurityConfig()
        self._tracing = TracingConfig()
        self.clock = clock
        self._sections: dict[str, Any] = {}
        self._discovery = DiscoveryConfig()

    def with_plugin(self, name: str, plugin: PluginSource | Any, config: PluginConfig | None = None) -> Self:
        """Add a plugin: a source such as `plugwire.in_process(obj)`, or a plugin object.

        Args:
            name: The name calls use.
            plugin: Where the plugin lives.
            config: Settings for this plugin, used as given; without it the profile's
                timeouts and the builder's `with_retry`, `with_circuit_breaker`,
                `with_rate_limit` and `with_health_check` settings apply.
        """
        if any(existing == name for _, existing, _ in self._plugins):
            raise ConfigError(
                f"with_plugin: a plugin named {name!r} was already added",
                code=ErrorCode.CONFIG_DUPLICATE_PLUGIN,
            )
        source = plugin if isinstance(plugin, PluginSource) else InProcess(plugin)
        self._plugins.append((source, name, config))
        return self

    def from_directory(self, path: str | os.PathLike[str]) -> Self:
        """Discover plugins in the folder `path` when the manager starts (README
        `FromDirectory`); call it again to add folders. See docs/lifecycle.md, "Discovery".

        Found: executable files (matching `with_pattern`, if set) and subfolders holding a
        `plugin.yaml` manifest. Each gets the settings `plugin_config(name)` describes.
        """
        folder = os.fspath(path)
        if not folder.strip() or "\x00" in folder:
            raise ConfigError(
                f"from_directory: expected a folder path, got {folder!r}", code=ErrorCode.CONFIG_INVALID_VALUE
            )
        directories = (*self._discovery.directories, folder)
        self._discovery = msgspec.structs.replace(self._discovery, enabled=True, directories=directories)
        return self

    def with_pattern(self, pattern: str) -> Self:
        """Discover only the executable files whose name matches the glob `pattern`
        (README `WithPattern`, e.g. ``"*-plugin"``); without it every executable file is taken."""
        if not isinstance(pattern, str) or "/" in pattern or "\x00" in pattern:
            raise ConfigError(
                f"with_pattern: a pattern matches file names, without '/': got {pattern!r}",
                code=ErrorCode.CONFIG_INVALID_VALUE,
            )
        self._discovery = msgspec.structs.replace(self._discovery, pattern=pattern)
        return self

    def watch(self, enabled: bool = True, *, settle: float | None = None) -> Self:
        """Keep watching the discovery folders: a plugin dropped in is started, a removed
        one drained, a changed one restarted (watchfiles with the `watch` extra, else polling).

        Args:
            enabled: Watch (default) or not.
            settle: Seconds a new or changed file must hold still before it is started
                (default 0.25); also the polling interval.
        """
        settings: dict[str, Any] = {"watch": enabled}
        if settle is not None:
            settings["settle"] = settle
        self._discovery = _section("watch", DiscoveryConfig, self._discovery, settings)
        return self

    def with_logger(self, logger: LoggerLike) -> Self:
        """Log through `logger` (stdlib, structlog, loguru, ...)."""
        self._logger = logger
        return self

    def with_timeout(self, seconds: float) -> Self:
        """Bound every call attempt to `seconds` (each plugin's `request_timeout`)."""
        if seconds <= 0:
            raise ConfigError(f"with_timeout: must be positive, got {seconds!r}", code=ErrorCode.CONFIG_INVALID_VALUE)
        self._request_timeout = float(seconds)
        return self

    def with_security(
        self,
        whitelist_file: str,
        *,
        policy: SecurityPolicy | str = SecurityPolicy.STRICT,
        audit_file: str = "",
        watch: bool = False,
    ) -> Self:
        """Only run the plugins pinned in `whitelist_file`, and keep an audit log.

        Args:
            whitelist_file: The whitelist (see docs/security.md).
            policy: `strict` (default), `permissive`, `audit` or `disabled`.
            audit_file: The audit database (`.jsonl` for JSON lines); default: the host's
                data folder.
            watch: Reload the whitelist when the file changes.
        """
        self._security = SecurityConfig(
            enabled=True,
            policy=SecurityPolicy(policy),
            whitelist_file=whitelist_file,
            watch_config=watch,
            audit_config=SecurityAuditConfig(enabled=True, audit_file=audit_file),
        )
        return self

    def with_metrics(self, config: MetricsConfig | None = None, /, **settings: Any) -> Self:
        """Count every call, its outcome and its latency (README `WithMetrics()`): read them
        with `manager.get_metrics()` or an exporter. `production()` has them on already.

        Args:
            config: A `MetricsConfig`; or its fields as keywords (`buckets=(...)`).
        """
        self._metrics = msgspec.structs.replace(_section("with_metrics", MetricsConfig, config, settings), enabled=True)
        return self

    def with_tracing(self, config: TracingConfig | None = None, /, **settings: Any) -> Self:
        """Trace every call with OpenTelemetry from the start (README `EnableTracing`; needs
        `plugwire[otel]`; see docs/observability.md).

        Args:
            config: A `TracingConfig`; or its fields as keywords
                (``endpoint="http://localhost:4318", sample_rate=0.1``). Without `endpoint`
                the spans go to the application's global `TracerProvider`.
        """
        self._tracing = msgspec.structs.replace(_section("with_tracing", TracingConfig, config, settings), enabled=True)
        return self

    def with_circuit_breaker(self, config: CircuitBreakerConfig | None = None, /, **settings: Any) -> Self:
        """Give every plugin this circuit breaker (a `CircuitBreakerConfig`, or its fields).

        Example: ``.with_circuit_breaker(failure_threshold=3, recovery_timeout=10)``.
        """
        self._sections["circuit_breaker"] = _section("with_circuit_breaker", CircuitBreakerConfig, config, settings)
        return self

    def with_retry(self, config: RetryConfig | None = None, /, **settings: Any) -> Self:
        """Give every plugin this retry policy (a `RetryConfig`, or its fields)."""
        self._sections["retry"] = _section("with_retry", RetryConfig, config, settings)
        return self

    def with_rate_limit(self, config: RateLimitConfig | None = None, /, **settings: Any) -> Self:
        """Rate-limit every plugin (a `RateLimitConfig`, or its fields; enabled unless told not).

        Example: ``.with_rate_limit(requests_per_second=50, burst_size=10, wait=True)``.
        """
        self._sections["rate_limit"] = _section(
            "with_rate_limit", RateLimitConfig, config or RateLimitConfig(enabled=True), settings
        )
        return self

    def with_health_check(self, config: HealthCheckConfig | None = None, /, **settings: Any) -> Self:
        """Monitor every plugin's health this way (a `HealthCheckConfig`, or its fields).

        Fields not given keep the profile's interval and the README's other defaults.
        """
        base = config or HealthCheckConfig(interval=self._health_interval)
        self._sections["health_check"] = _section("with_health_check", HealthCheckConfig, base, settings)
        return self

    def plugin_config(self, name: str) -> PluginConfig:
        """The settings a plugin added without a config of its own gets: the profile's
        timeouts and health interval, and the `with_*` sections (README: "Presets")."""
        sections: dict[str, Any] = {"health_check": HealthCheckConfig(interval=self._health_interval)}
        sections.update(self._sections)
        return PluginConfig(
            name=name,
            connection=ConnectionConfig(
                request_timeout=self._request_timeout, connection_timeout=self._connection_timeout
            ),
            **sections,
        )

    def _plugin_config(self, source: PluginSource, name: str, given: PluginConfig | None) -> PluginConfig:
        return source.configure(name, given or self.plugin_config(name))

    def _logger_for_profile(self) -> LoggerLike | None:
        # None: the manager sets the `plugwire` loggers to the profile's `log_level`, as for
        # any config (every plugwire logger, each time a manager is built).
        return self._logger

    def _config(self) -> ManagerConfig:
        return ManagerConfig(
            log_level=self._log_level,
            security=self._security,
            metrics=self._metrics,
            tracing=self._tracing,
            discovery=self._discovery,
        )

    def build(self) -> AsyncPluginManager[ReqT, RespT]:
        """An `AsyncPluginManager`; `async with` it to start the plugins."""
        manager: AsyncPluginManager[ReqT, RespT] = AsyncPluginManager(
            self.request_type, self.response_type, self._config(), self._logger_for_profile(), clock=self.clock
        )
        for source, name, given in self._plugins:
            manager._queue(source, self._plugin_config(source, name, given))
        if manager.discovery is not None:  # discovered plugins get the profile's settings too
            manager.discovery.plugin_config = self.plugin_config
        return manager

    def build_blocking(self) -> PluginManager[ReqT, RespT]:
        """A started blocking `PluginManager` (close it, or use it as a context manager)."""
        manager: PluginManager[ReqT, RespT] = PluginManager(
            self.request_type, self.response_type, self._config(), self._logger_for_profile(), clock=self.clock
        )
        try:
            plugins = [(source, name, self._plugin_config(source, name, cfg)) for source, name, cfg in self._plugins]
            plugins.sort(key=lambda item: item[2].priority)  # as `start()` orders them; stable
            for source, name, config in plugins:
                manager.register(source, name=name, config=config)
            discovery = manager.async_manager.discovery
            if discovery is not None:
                discovery.plugin_config = self.plugin_config
                manager.start()  # discovers and registers the folders' plugins
        except BaseException:
            manager.close()
            raise
        return manager


def simple(
    request_type: type[ReqT], response_type: type[RespT], *, clock: Clock | None = None
) -> ManagerBuilder[ReqT, RespT]:
    """A builder with the README's defaults."""
    return ManagerBuilder(request_type, response_type, "simple", clock=clock)


def development(
    request_type: type[ReqT], response_type: type[RespT], *, clock: Clock | None = None
) -> ManagerBuilder[ReqT, RespT]:
    """A builder for development: debug logging and longer timeouts (120 s per call)."""
    return ManagerBuilder(request_type, response_type, "development", clock=clock)


def production(
    request_type: type[ReqT], response_type: type[RespT], *, clock: Clock | None = None
) -> ManagerBuilder[ReqT, RespT]:
    """A builder for production: warnings only, shorter timeouts (10 s per call), metrics on."""
    return ManagerBuilder(request_type, response_type, "production", clock=clock)


def auto(
    request_type: type[ReqT], response_type: type[RespT], *, clock: Clock | None = None
) -> ManagerBuilder[ReqT, RespT]:
    """A builder that discovers its plugins (README `Auto[Req, Resp]()`): name the folders
    with `from_directory`, optionally `with_pattern` and `watch`, then `build()`.

    Example: ``plugwire.auto(Req, Resp).from_directory("./plugins").with_pattern("*-plugin").build()``.
    The README's defaults otherwise apply, as with `simple()`.
    """
    builder = ManagerBuilder(request_type, response_type, "simple", clock=clock)
    builder._discovery = DiscoveryConfig(enabled=True)
    return builder


def _section(where: str, kind: type[SectionT], config: SectionT | None, settings: dict[str, Any]) -> SectionT:
    """`config` (or the defaults) with `settings` applied, validated like a config file."""
    base = config if config is not None else kind()
    data = msgspec.to_builtins(base)
    data.update(settings)
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}", code=ErrorCode.CONFIG_INVALID_VALUE) from None
