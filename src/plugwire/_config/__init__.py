"""Configuration: the README's config types, their defaults, loading and validation."""

from __future__ import annotations

from ._duration import parse_duration
from ._load import (
    check_plugin_config,
    config_from_data,
    load_config_file,
    load_data_file,
    refuse_unbuilt_features,
    validate_plugin_config,
)
from ._structs import (
    AuthConfig,
    CircuitBreakerConfig,
    ConnectionConfig,
    HealthCheckConfig,
    ManagerConfig,
    PluginConfig,
    RateLimitConfig,
    RetryConfig,
    Seconds,
    SecurityAuditConfig,
    SecurityConfig,
    TracingConfig,
)

__all__ = [
    "AuthConfig",
    "CircuitBreakerConfig",
    "ConnectionConfig",
    "HealthCheckConfig",
    "ManagerConfig",
    "PluginConfig",
    "RateLimitConfig",
    "RetryConfig",
    "Seconds",
    "SecurityAuditConfig",
    "SecurityConfig",
    "TracingConfig",
    "check_plugin_config",
    "config_from_data",
    "default_manager_config",
    "load_config_file",
    "load_data_file",
    "parse_duration",
    "refuse_unbuilt_features",
    "validate_plugin_config",
]


def default_manager_config() -> ManagerConfig:
    """Return the README's default manager configuration (no plugins yet)."""
    return ManagerConfig()
