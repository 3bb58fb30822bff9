"""plugwire: typed, out-of-process plugins with resilience, security and observability.

The top level holds the names of the README's mapping table (the product's promise) and the
types its calls return; everything else lives in a public namespace that only re-exports:
`plugwire.config`, `plugwire.errors`, `plugwire.lifecycle`, `plugwire.observe`,
`plugwire.policies`, `plugwire.security`, `plugwire.sdk` and `plugwire.testing`. The names
that used to be here as well still resolve, with a `DeprecationWarning` naming their new
place, for one release.

Host-side names are imported on first use (PEP 562), so a plugin process that imports
`plugwire` to call `plugwire.serve()` loads only the SDK and its layers 0-2, never the
manager or the transports.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigError as ConfigError
from ._errors import ExecutionError as ExecutionError
from ._errors import OutcomeUnknownError as OutcomeUnknownError
from ._errors import PluginError as PluginError
from ._errors import PluginNotFoundError as PluginNotFoundError
from ._errors import PluginTimeoutError as PluginTimeoutError
from ._errors import PluginUnavailableError as PluginUnavailableError
from ._errors import RateLimitedError as RateLimitedError
from ._errors import TransportError as TransportError
from ._models import AuthMethod as AuthMethod
from ._models import ExecutionContext as ExecutionContext
from ._models import HealthStatus as HealthStatus
from ._models import Plugin as Plugin
from ._models import PluginInfo as PluginInfo
from ._models import SecurityPolicy as SecurityPolicy
from ._models import Status as Status
from ._models import Transport as Transport
from ._sdk.serve import serve as serve

if TYPE_CHECKING:
    from . import config as config
    from . import errors as errors
    from . import lifecycle as lifecycle
    from . import observe as observe
    from . import policies as policies
    from . import sdk as sdk
    from . import security as security
    from . import testing as testing
    from ._builder import ManagerBuilder as ManagerBuilder
    from ._builder import auto as auto
    from ._builder import development as development
    from ._builder import production as production
    from ._builder import simple as simple
    from ._config import AuthConfig as AuthConfig
    from ._config import CircuitBreakerConfig as CircuitBreakerConfig
    from ._config import ConnectionConfig as ConnectionConfig
    from ._config import HealthCheckConfig as HealthCheckConfig
    from ._config import ManagerConfig as ManagerConfig
    from ._config import MetricsConfig as MetricsConfig
    from ._config import PluginConfig as PluginConfig
    from ._config import RateLimitConfig as RateLimitConfig
    from ._config import RetryConfig as RetryConfig
    from ._config import SecurityAuditConfig as SecurityAuditConfig
    from ._config import SecurityConfig as SecurityConfig
    from ._config import TracingConfig as TracingConfig
    from ._config import default_manager_config as default_manager_config
    from ._handle import PluginHandle as PluginHandle
    from ._manager import AsyncPluginManager as AsyncPluginManager
    from ._observe.otlp import OTLPConfig as OTLPConfig
    from ._observe.otlp import OTLPExporter as OTLPExporter
    from ._observe.prometheus import PrometheusConfig as PrometheusConfig
    from ._observe.prometheus import PrometheusExporter as PrometheusExporter
    from ._run import run as run
    from ._sources import PluginSource as PluginSource
    from ._sources import grpc as grpc
    from ._sources import in_process as in_process
    from ._sources import subprocess as subprocess
    from ._sync import BlockingPluginHandle as BlockingPluginHandle
    from ._sync import PluginManager as PluginManager

    __version__: str

    # Deprecated top-level spellings, still typed for the one release they keep working.
    from ._auth import CredentialProvider as CredentialProvider
    from ._auth import CredentialVerifier as CredentialVerifier
    from ._clock import Clock as Clock
    from ._codec import TypedCodec as TypedCodec
    from ._errors import AuthenticationError as AuthenticationError
    from ._errors import CallError as CallError
    from ._errors import CircuitBreakerError as CircuitBreakerError
    from ._errors import ConfigFileError as ConfigFileError
    from ._errors import ErrorCode as ErrorCode
    from ._errors import HealthError as HealthError
    from ._errors import InvalidPluginError as InvalidPluginError
    from ._errors import ManagerClosedError as ManagerClosedError
    from ._errors import ManagerNotStartedError as ManagerNotStartedError
    from ._errors import MissingDependencyError as MissingDependencyError
    from ._errors import PluginAlreadyRegisteredError as PluginAlreadyRegisteredError
    from ._errors import PluginConnectingError as PluginConnectingError
    from ._errors import PluginDisabledError as PluginDisabledError
    from ._errors import ProcessError as ProcessError
    from ._errors import ProtocolError as ProtocolError
    from ._errors import RateLimitError as RateLimitError
    from ._errors import RequestSent as RequestSent
    from ._errors import RequestValidationError as RequestValidationError
    from ._errors import ResponseValidationError as ResponseValidationError
    from ._errors import SecurityError as SecurityError
    from ._observe import ManagerMetrics as ManagerMetrics
    from ._observe import PluginMetrics as PluginMetrics
    from ._policies import BreakerListener as BreakerListener
    from ._policies import BreakerState as BreakerState
    from ._policies import BreakerStateChange as BreakerStateChange
    from ._policies import CircuitBreaker as CircuitBreaker
    from ._policies import ErrorClassifier as ErrorClassifier
    from ._policies import Policy as Policy
    from ._policies import default_error_classifier as default_error_classifier
    from ._sdk.grpc_server import GrpcPluginServer as GrpcPluginServer
    from ._sdk.grpc_server import serve_grpc as serve_grpc
    from ._security import AuditEvent as AuditEvent
    from ._security import AuditLog as AuditLog
    from ._security import AuditRow as AuditRow
    from ._security import ChainReport as ChainReport
    from ._security import LaunchHook as LaunchHook
    from ._security import SecurityEngine as SecurityEngine
    from ._security import Whitelist as Whitelist
    from ._security import WhitelistEntry as WhitelistEntry
    from ._security import load_whitelist as load_whitelist
    from ._tls import ServerTLSConfig as ServerTLSConfig
    from ._tls import TLSConfig as TLSConfig
    from ._transports._restarts import RestartPolicy as RestartPolicy
    from ._transports.subprocess import SubprocessOptions as SubprocessOptions
    from .goplugin import _CallableModule

    # The module `plugwire.goplugin` is also callable (its class says so at run time): typed here.
    goplugin: _CallableModule

# Host-side names load on first use, so a plugin process that runs `import plugwire` to call
# `plugwire.serve()` never imports the manager, the transports or the policies.
_LAZY: dict[str, str] = {
    "AsyncPluginManager": "._manager",
    "AuthConfig": "._config",
    "BlockingPluginHandle": "._sync",
    "CircuitBreakerConfig": "._config",
    "ConnectionConfig": "._config",
    "HealthCheckConfig": "._config",
    "ManagerBuilder": "._builder",
    "ManagerConfig": "._config",
    "ManagerMetrics": "._observe",
    "MetricsConfig": "._config",
    "OTLPConfig": "._observe.otlp",
    "OTLPExporter": "._observe.otlp",
    "PluginConfig": "._config",
    "PluginHandle": "._handle",
    "PluginManager": "._sync",
    "PluginMetrics": "._observe",
    "PluginSource": "._sources",
    "PrometheusConfig": "._observe.prometheus",
    "PrometheusExporter": "._observe.prometheus",
    "RateLimitConfig": "._config",
    "RetryConfig": "._config",
    "SecurityAuditConfig": "._config",
    "SecurityConfig": "._config",
    "TracingConfig": "._config",
    "auto": "._builder",
    "default_manager_config": "._config",
    "development": "._builder",
    "grpc": "._sources",
    "in_process": "._sources",
    "production": "._builder",
    "run": "._run",
    "simple": "._builder",
    "subprocess": "._sources",
}

# The public namespaces: modules that only re-export, imported on first use.
_NAMESPACES = frozenset(
    {"config", "errors", "goplugin", "lifecycle", "observe", "policies", "sdk", "security", "testing"}
)

# Names that were top-level before the namespaces: name -> the namespace that holds it now.
# They resolve (with a DeprecationWarning) for one release, and are not in __all__ or dir().
_DEPRECATED: dict[str, str] = {
    "AuditEvent": "security",
    "AuditLog": "security",
    "AuditRow": "security",
    "AuthenticationError": "errors",
    "BreakerListener": "policies",
    "BreakerState": "policies",
    "BreakerStateChange": "policies",
    "CallError": "errors",
    "ChainReport": "security",
    "CircuitBreaker": "policies",
    "CircuitBreakerError": "errors",
    "Clock": "testing",
    "ConfigFileError": "errors",
    "CredentialProvider": "security",
    "CredentialVerifier": "security",
    "ErrorClassifier": "policies",
    "ErrorCode": "errors",
    "GrpcPluginServer": "sdk",
    "HealthError": "errors",
    "InvalidPluginError": "errors",
    "LaunchHook": "security",
    "ManagerClosedError": "errors",
    "ManagerNotStartedError": "errors",
    "MissingDependencyError": "errors",
    "PluginAlreadyRegisteredError": "errors",
    "PluginConnectingError": "errors",
    "PluginDisabledError": "errors",
    "Policy": "policies",
    "ProcessError": "errors",
    "ProtocolError": "errors",
    "RateLimitError": "errors",
    "RequestSent": "errors",
    "RequestValidationError": "errors",
    "ResponseValidationError": "errors",
    "RestartPolicy": "config",
    "SecurityEngine": "security",
    "SecurityError": "errors",
    "ServerTLSConfig": "security",
    "SubprocessOptions": "config",
    "TLSConfig": "security",
    "TypedCodec": "sdk",
    "Whitelist": "security",
    "WhitelistEntry": "security",
    "default_error_classifier": "policies",
    "load_whitelist": "security",
    "serve_grpc": "sdk",
}

__all__ = [
    "AsyncPluginManager",
    "AuthConfig",
    "AuthMethod",
    "BlockingPluginHandle",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "ConfigError",
    "ConnectionConfig",
    "ExecutionContext",
    "ExecutionError",
    "HealthCheckConfig",
    "HealthStatus",
    "ManagerBuilder",
    "ManagerConfig",
    "ManagerMetrics",
    "MetricsConfig",
    "OTLPConfig",
    "OTLPExporter",
    "OutcomeUnknownError",
    "Plugin",
    "PluginConfig",
    "PluginError",
    "PluginHandle",
    "PluginInfo",
    "PluginManager",
    "PluginMetrics",
    "PluginNotFoundError",
    "PluginSource",
    "PluginTimeoutError",
    "PluginUnavailableError",
    "PrometheusConfig",
    "PrometheusExporter",
    "RateLimitConfig",
    "RateLimitedError",
    "RetryConfig",
    "SecurityAuditConfig",
    "SecurityConfig",
    "SecurityPolicy",
    "Status",
    "TracingConfig",
    "Transport",
    "TransportError",
    "__version__",
    "auto",
    "default_manager_config",
    "development",
    "grpc",
    "in_process",
    "production",
    "run",
    "serve",
    "simple",
    "subprocess",
]


def _version() -> str:
    # importlib.metadata costs ~15 ms to import: only plugin start-up would pay it otherwise.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plugwire")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value
    if name in _NAMESPACES:
        return importlib.import_module(f"{__name__}.{name}")
    namespace = _DEPRECATED.get(name)
    if namespace is not None:
        # Not cached in globals(): every use warns, `plugwire.X` and `from plugwire import X` alike.
        warnings.warn(
            f"plugwire.{name} is deprecated and will be removed in the next release; use plugwire.{namespace}.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(f"{__name__}.{namespace}"), name)
    raise AttributeError(f"module 'plugwire' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_NAMESPACES} | {name for name in globals() if name.startswith("__")})
