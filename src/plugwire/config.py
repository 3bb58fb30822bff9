"""Configuration values: the manager's and each plugin's config, and subprocess options.

The config Structs named in the README's mapping table are also at the top level
(`plugwire.ManagerConfig`, ...); `SubprocessOptions`, `RestartPolicy`, `DiscoveryConfig`,
`PrometheusEndpointConfig` and the discovered plugins' `PluginManifest` live here only.
"""

from __future__ import annotations

from ._config import AuthConfig as AuthConfig
from ._config import CircuitBreakerConfig as CircuitBreakerConfig
from ._config import ConnectionConfig as ConnectionConfig
from ._config import DiscoveryConfig as DiscoveryConfig
from ._config import GoPluginConfig as GoPluginConfig
from ._config import HealthCheckConfig as HealthCheckConfig
from ._config import HotReloadConfig as HotReloadConfig
from ._config import ManagerConfig as ManagerConfig
from ._config import MetricsConfig as MetricsConfig
from ._config import PluginConfig as PluginConfig
from ._config import PrometheusEndpointConfig as PrometheusEndpointConfig
from ._config import RateLimitConfig as RateLimitConfig
from ._config import RetryConfig as RetryConfig
from ._config import SecurityAuditConfig as SecurityAuditConfig
from ._config import SecurityConfig as SecurityConfig
from ._config import TracingConfig as TracingConfig
from ._config import default_manager_config as default_manager_config
from ._discovery import PluginManifest as PluginManifest
from ._transports._restarts import RestartPolicy as RestartPolicy
from ._transports.subprocess import SubprocessOptions as SubprocessOptions

__all__ = [
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
    "PluginManifest",
    "PrometheusEndpointConfig",
    "RateLimitConfig",
    "RestartPolicy",
    "RetryConfig",
    "SecurityAuditConfig",
    "SecurityConfig",
    "SubprocessOptions",
    "TracingConfig",
    "default_manager_config",
]
