"""Configuration: the README's config types, their defaults, loading and validation."""

from __future__ import annotations

from ._duration import parse_duration
from ._load import (
    MAX_DOCUMENT_NODES,
    MAX_FILE_BYTES,
    MAX_NESTING,
    check_plugin_config,
    config_from_data,
    convert_document,
    data_format,
    did_you_mean,
    is_host,
    load_config_file,
    load_data_file,
    parse_data,
    read_data_file,
    tracing_traces_url,
    validate_plugin_config,
)
from ._paths import HOST_PYTHON, with_host_python
from ._structs import (
    SECRET_NAME,
    AuthConfig,
    CircuitBreakerConfig,
    ConnectionConfig,
    DiscoveryConfig,
    GoPluginConfig,
    HealthCheckConfig,
    HotReloadConfig,
    ManagerConfig,
    MetricsConfig,
    PluginConfig,
    PrometheusEndpointConfig,
    RateLimitConfig,
    RetryConfig,
    Seconds,
    SecurityAuditConfig,
    SecurityConfig,
    TracingConfig,
    secret_kind,
)

__all__ = [
    "HOST_PYTHON",
    "MAX_DOCUMENT_NODES",
    "MAX_FILE_BYTES",
    "MAX_NESTING",
    "SECRET_NAME",
    "AuthConfig",
    "CircuitBreakerConfig",
    "ConnectionConfig",
    "DiscoveryConfig",
    "GoPluginConfig",
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
    "check_plugin_config",
    "config_from_data",
    "convert_document",
    "data_format",
    "default_manager_config",
    "did_you_mean",
    "is_host",
    "load_config_file",
    "load_data_file",
    "parse_data",
    "parse_duration",
    "read_data_file",
    "secret_kind",
    "tracing_traces_url",
    "validate_plugin_config",
    "with_host_python",
]


def default_manager_config() -> ManagerConfig:
    """Return the README's default manager configuration (no plugins yet)."""
    return ManagerConfig()
