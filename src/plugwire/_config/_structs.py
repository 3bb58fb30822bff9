"""The configuration types of the README, as frozen msgspec Structs with its defaults.

Durations are seconds (`float`); files and `from_dict` also accept strings like "250ms".
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any

import msgspec

from .._models import AuthMethod, SecurityPolicy, Transport

__all__ = [
    "SECRET_NAME",
    "AuthConfig",
    "CircuitBreakerConfig",
    "ConnectionConfig",
    "DiscoveryConfig",
    "HealthCheckConfig",
    "HotReloadConfig",
    "ManagerConfig",
    "MetricsConfig",
    "PluginConfig",
    "PrometheusEndpointConfig",
    "RateLimitConfig",
    "RetryConfig",
    "Seconds",
    "SecurityAuditConfig",
    "SecurityConfig",
    "TracingConfig",
    "secret_kind",
]

Seconds = Annotated[float, msgspec.Meta(ge=0, extra={"duration": True})]
"""A duration in seconds; config files may write it as "250ms", "30s", "5m"."""

#: A credential: never shown (`repr()`, `plugwire config show` print "***").
Secret = Annotated[str, msgspec.Meta(extra={"secret": True})]
#: A field whose name sounds like a credential but holds where to find one (a file path, an
#: environment variable's name): shown as written. Declared so that every credential-like
#: field is classified one way or the other (a test checks it).
SecretReference = Annotated[str, msgspec.Meta(extra={"secret": False})]
#: A field whose name sounds like a credential but whose value is not one, e.g. go-plugin's
#: magic cookie (a constant compiled into host and plugin alike, to tell a plugin started by
#: hand, not a secret): shown as written.
NotSecret = Annotated[str, msgspec.Meta(extra={"secret": False})]
#: A mapping of names to values (a plugin's `env`) whose values are credentials when their
#: name looks like one: `API_KEY`, `DB_PASSWORD`, `GITHUB_TOKEN` (see `SECRET_NAME`).
SecretsByName = Annotated[dict[str, str], msgspec.Meta(extra={"secret": "by-name"})]
#: Names that sound like a credential: a `SecretsByName` value under such a name is one, and
#: a config field so named must be declared `Secret` or `SecretReference`.
SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|credential|auth|cookie|session|private", re.IGNORECASE)

NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PluginName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


class _Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config Struct: frozen, keyword-only, unknown keys refused."""


class RetryConfig(_Config, frozen=True):
    """Retry with exponential backoff (README `RetryConfig`)."""

    max_retries: NonNegativeInt = 3
    initial_interval: Seconds = 0.1
    max_interval: Seconds = 5.0
    multiplier: Annotated[float, msgspec.Meta(ge=1.0)] = 2.0
    random_jitter: bool = True
    #: Every call of the plugin may safely run twice: retry even when the request may have
    #: reached the plugin (a timeout after sending, a crash mid-call), as
    #: `ExecutionContext(idempotent=True)` does for one call.
    idempotent: bool = False


class CircuitBreakerConfig(_Config, frozen=True):
    """When to stop calling a failing plugin (README `CircuitBreakerConfig`)."""

    enabled: bool = True
    failure_threshold: PositiveInt = 5
    recovery_timeout: Seconds = 30.0
    min_request_threshold: NonNegativeInt = 3
    success_threshold: PositiveInt = 2


class HealthCheckConfig(_Config, frozen=True):
    """How often and how patiently a plugin's health is checked (README `HealthCheckConfig`)."""

    enabled: bool = True
    interval: Seconds = 30.0
    timeout: Seconds = 5.0
    failure_limit: PositiveInt = 3


class ConnectionConfig(_Config, frozen=True):
    """Connection pool and timeouts (README `ConnectionConfig`).

    For executable plugins `max_connections` is the number of plugin processes.
    """

    max_connections: PositiveInt = 10
    max_idle_connections: NonNegativeInt = 5
    idle_timeout: Seconds = 30.0
    connection_timeout: Seconds = 10.0
    request_timeout: Seconds = 30.0
    keep_alive: bool = True
    #: Largest request or response in bytes (gRPC: the channel's send and receive limits).
    max_message_size: PositiveInt = 16 * 1024 * 1024
    #: Executable plugins: a process that answers nothing for this long while its calls keep
    #: timing out (two at least) is stuck; it is restarted (1311). 0 turns the check off.
    stall_timeout: Seconds = 10.0
    #: A plugin that cannot be reached at registration is registered anyway, as connecting
    #: (calls fail with `PluginConnectingError` 1603), and its health monitor keeps trying to
    #: start it. None: on for gRPC plugins, off for the others.
    connect_in_background: bool | None = None


class RateLimitConfig(_Config, frozen=True):
    """Token-bucket rate limit (README `RateLimitConfig`); off unless enabled.

    `wait`: a call over the limit waits for a token (bounded by its deadline) instead of
    failing at once with `RateLimitedError`.
    """

    enabled: bool = False
    requests_per_second: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    burst_size: PositiveInt = 20
    time_window: Seconds = 0.0
    wait: bool = False


class AuthConfig(_Config, frozen=True):
    """How the host authenticates to the plugin (README `AuthConfig`).

    Each secret may be given inline, or (better) as the path of a file holding it
    (`*_file`) or the name of an environment variable holding it (`*_env`); set at most one
    of the three. Secrets (`api_key`, `token`, `password`) never appear in `repr()`.
    """

    method: AuthMethod = AuthMethod.NONE
    api_key: Secret = ""
    token: Secret = ""
    username: str = ""
    password: Secret = ""
    cert_file: str = ""
    key_file: SecretReference = ""
    ca_file: str = ""
    api_key_file: SecretReference = ""
    api_key_env: SecretReference = ""
    token_file: SecretReference = ""
    token_env: SecretReference = ""
    password_file: SecretReference = ""
    password_env: SecretReference = ""

    def __repr__(self) -> str:
        shown = []
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if field in _SECRET_FIELDS and value:
                value = "***"
            shown.append(f"{field}={value!r}")
        return f"AuthConfig({', '.join(shown)})"

    __str__ = __repr__


def secret_kind(annotation: Any) -> bool | str | None:
    """How a field's declared type classifies it: True a credential, "by-name" a mapping
    whose credential-named values are, False a reference to one, None unclassified."""
    for meta in typing.get_args(annotation)[1:] if typing.get_origin(annotation) is Annotated else ():
        if isinstance(meta, msgspec.Meta) and meta.extra and "secret" in meta.extra:
            kind: bool | str = meta.extra["secret"]
            return kind
    return None


_SECRET_FIELDS = frozenset(
    name for name, hint in typing.get_type_hints(AuthConfig, include_extras=True).items() if secret_kind(hint) is True
)


class GoPluginConfig(_Config, frozen=True):
    """A HashiCorp go-plugin plugin's handshake (`transport: go-plugin`; see docs/go-plugin.md).

    `magic_cookie_key`/`magic_cookie_value` and `protocol_version` are go-plugin's
    `HandshakeConfig`; `service` is the gRPC service the plugin serves (`plugwire.v1.Plugin`:
    `execute` calls it; another name: reach it through `manager.channel(name)`).
    """

    protocol_version: Annotated[int, msgspec.Meta(ge=0)] = 1
    magic_cookie_key: NotSecret = ""
    magic_cookie_value: NotSecret = ""
    service: str = "plugwire.v1.Plugin"


class PluginConfig(_Config, frozen=True):
    """One plugin: where it lives, how to reach it, and its resilience settings."""

    name: PluginName
    type: str = ""
    transport: Transport = Transport.EXECUTABLE
    executable: str = ""
    args: tuple[str, ...] = ()
    env: SecretsByName = msgspec.field(default_factory=dict)
    work_dir: str = ""
    endpoint: str = ""
    enabled: bool = True
    priority: int = 0
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    circuit_breaker: CircuitBreakerConfig = msgspec.field(default_factory=CircuitBreakerConfig)
    health_check: HealthCheckConfig = msgspec.field(default_factory=HealthCheckConfig)
    connection: ConnectionConfig = msgspec.field(default_factory=ConnectionConfig)
    rate_limit: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)
    go_plugin: GoPluginConfig = msgspec.field(default_factory=GoPluginConfig)
    metadata: SecretsByName = msgspec.field(default_factory=dict)


class SecurityAuditConfig(_Config, frozen=True):
    """Audit log settings (README `SecurityAuditConfig`)."""

    enabled: bool = False
    audit_file: str = ""
    log_unauthorized: bool = True
    log_authorized: bool = False
    log_config_changes: bool = True
    include_metadata: bool = True


class SecurityConfig(_Config, frozen=True):
    """Whitelist and policy settings (README `SecurityConfig`)."""

    enabled: bool = False
    policy: SecurityPolicy = SecurityPolicy.DISABLED
    whitelist_file: str = ""
    watch_config: bool = False
    hash_algorithm: str = "sha256"
    audit_config: SecurityAuditConfig = msgspec.field(default_factory=SecurityAuditConfig)


class TracingConfig(_Config, frozen=True):
    """Distributed tracing settings (README `TracingConfig`; see docs/observability.md).

    Attributes:
        enabled: Trace every call from the start (a span per `execute`, a child span per
            attempt, the context sent to the plugin); needs `plugwire[otel]`. Or call
            `manager.enable_tracing(...)` at run time.
        service_name: The `service.name` of the spans when plugwire exports them itself
            (`endpoint` set); with the application's own provider, its resource decides.
        endpoint: An OTLP/HTTP collector (``http://host:4318``; ``/v1/traces`` is appended
            unless the URL ends with it): plugwire then builds its own tracer provider and
            exporter. Empty: the spans go to the application's global `TracerProvider`.
        sample_rate: The share of new traces recorded (0.0-1.0), as a parent-based ratio
            sampler: a call inside a trace follows its parent's decision. Applies to
            plugwire's own provider only (`endpoint` set).
    """

    enabled: bool = False
    service_name: str = "plugwire"
    endpoint: str = ""
    sample_rate: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0


# The histogram's default bucket bounds (`plugwire._observe.metrics.DEFAULT_BUCKETS`, kept
# equal by a test): the config layer sits below observability and does not import it.
_DEFAULT_BUCKETS: tuple[float, ...] = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class PrometheusEndpointConfig(_Config, frozen=True):
    """A Prometheus endpoint the manager serves itself (see docs/observability.md).

    The manager starts a `PrometheusExporter` with these settings when it starts, and closes
    it at shutdown, as `register_metrics_exporter` would. It needs the `prometheus` extra.

    Attributes:
        enabled: Serve the endpoint.
        address: The address its HTTP server listens on: an IP address or a host name.
            Loopback by default; "0.0.0.0" (or "::") for a Prometheus on another host.
        port: Its port (0..65535); 0 picks a free one (`manager.metrics_url` tells which).
            The server answers on every path; Prometheus scrapes `/metrics`.
        namespace: The first part of every series name (`<namespace>_<subsystem>_<series>`):
            letters, digits and `_`, not starting with a digit or `__`; may be empty.
        subsystem: The second part, same rules.
        snapshot_timeout: Seconds a scrape waits for the manager's event loop to take the
            snapshot before it serves the last one again.
    """

    enabled: bool = False
    address: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9464
    namespace: str = "plugwire"
    subsystem: str = ""
    snapshot_timeout: Annotated[float, msgspec.Meta(gt=0, extra={"duration": True})] = 5.0


class MetricsConfig(_Config, frozen=True):
    """Per-plugin call metrics (README `WithMetrics()`; see docs/observability.md).

    Attributes:
        enabled: Count calls and time them into the latency histogram. Off by default
            (`production()` and `with_metrics()` turn it on, and so does registering an
            exporter or `prometheus.enabled`); health, breaker and restart counts are kept
            either way.
        buckets: Upper bounds, in seconds, of the latency histogram's buckets: positive and
            strictly increasing (a +Inf bucket is always added).
        prometheus: A Prometheus endpoint the manager serves while it runs.
    """

    enabled: bool = False
    buckets: tuple[Annotated[float, msgspec.Meta(gt=0)], ...] = _DEFAULT_BUCKETS
    prometheus: PrometheusEndpointConfig = msgspec.field(default_factory=PrometheusEndpointConfig)


class HotReloadConfig(_Config, frozen=True):
    """Reload the configuration when its file changes (see docs/lifecycle.md).

    Attributes:
        enabled: Watch `file` and call `reload_config(file)` after each change (with the
            `watch` extra through watchfiles, else by polling the file's stat).
        file: The configuration file to watch; a relative path resolves against the folder of
            the file it is written in. Required when enabled.
        debounce: Seconds a burst of changes is gathered (and, when polling, how often the
            file is looked at) before one reload.
    """

    enabled: bool = False
    file: str = ""
    debounce: Seconds = 0.2


class DiscoveryConfig(_Config, frozen=True):
    """Plugins found in folders instead of listed one by one (`plugwire.auto()`).

    See docs/lifecycle.md, "Discovery".

    Attributes:
        enabled: Look for plugins in `directories` when the manager starts.
        directories: The folders to look in (relative ones resolve against a config file's
            folder); their subfolders are looked in only for a `plugin.yaml` manifest.
        pattern: A shell glob matched against file names (``*-plugin``); "" takes every
            executable file. Only executable files are taken either way.
        watch: Keep watching the folders: a new plugin is started, a removed one drained, a
            changed one restarted (watchfiles with the `watch` extra, else polling).
        settle: Seconds a new or changed file must stay unchanged before it is started (a
            file still being copied is never started); also the polling interval.
    """

    enabled: bool = False
    directories: tuple[str, ...] = ()
    pattern: str = ""
    watch: bool = False
    settle: Annotated[float, msgspec.Meta(gt=0, extra={"duration": True})] = 0.25


class ManagerConfig(_Config, frozen=True):
    """Everything a manager needs: global settings and the plugins to register."""

    log_level: str = "info"
    shutdown_timeout: Seconds = 30.0
    plugins: tuple[PluginConfig, ...] = ()
    security: SecurityConfig = msgspec.field(default_factory=SecurityConfig)
    tracing: TracingConfig = msgspec.field(default_factory=TracingConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    hot_reload: HotReloadConfig = msgspec.field(default_factory=HotReloadConfig)
    discovery: DiscoveryConfig = msgspec.field(default_factory=DiscoveryConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManagerConfig:
        """Build and validate a config from plain data (as parsed from YAML, TOML or JSON).

        Raises:
            ConfigError: Naming the path of the first bad value, e.g.
                ``plugins[1].retry.max_retries: expected int, got str``.
        """
        from ._load import config_from_data

        return config_from_data(data)

    @classmethod
    def load(cls, path: str | Any) -> ManagerConfig:
        """Load and validate a config file: `.yaml`/`.yml`, `.toml` or `.json`.

        Relative paths in it resolve against the file's folder (see docs/configuration.md).

        Raises:
            ConfigFileError: The file is missing, unreadable, malformed or too complex.
            ConfigError: Its content is invalid (the message names the path).
        """
        from ._load import load_config_file

        return load_config_file(path)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain data that `from_dict` accepts back."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result
