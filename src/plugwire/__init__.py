"""plugwire: typed, out-of-process plugins with resilience, security and observability.

Host-side names are imported on first use (PEP 562), so a plugin process that imports
`plugwire` to call `plugwire.serve()` loads only the SDK and its layers 0-2, never the
manager or the transports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._clock import Clock as Clock
from ._codec import TypedCodec as TypedCodec
from ._errors import AuthenticationError as AuthenticationError
from ._errors import CallError as CallError
from ._errors import CircuitBreakerError as CircuitBreakerError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigError as ConfigError
from ._errors import ConfigFileError as ConfigFileError
from ._errors import ErrorCode as ErrorCode
from ._errors import ExecutionError as ExecutionError
from ._errors import HealthError as HealthError
from ._errors import InvalidPluginError as InvalidPluginError
from ._errors import ManagerClosedError as ManagerClosedError
from ._errors import ManagerNotStartedError as ManagerNotStartedError
from ._errors import MissingDependencyError as MissingDependencyError
from ._errors import OutcomeUnknownError as OutcomeUnknownError
from ._errors import PluginAlreadyRegisteredError as PluginAlreadyRegisteredError
from ._errors import PluginConnectingError as PluginConnectingError
from ._errors import PluginDisabledError as PluginDisabledError
from ._errors import PluginError as PluginError
from ._errors import PluginNotFoundError as PluginNotFoundError
from ._errors import PluginTimeoutError as PluginTimeoutError
from ._errors import PluginUnavailableError as PluginUnavailableError
from ._errors import ProcessError as ProcessError
from ._errors import ProtocolError as ProtocolError
from ._errors import RateLimitedError as RateLimitedError
from ._errors import RateLimitError as RateLimitError
from ._errors import RequestSent as RequestSent
from ._errors import RequestValidationError as RequestValidationError
from ._errors import ResponseValidationError as ResponseValidationError
from ._errors import SecurityError as SecurityError
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
    from ._auth import CredentialProvider as CredentialProvider
    from ._auth import CredentialVerifier as CredentialVerifier
    from ._config import AuthConfig as AuthConfig
    from ._config import CircuitBreakerConfig as CircuitBreakerConfig
    from ._config import ConnectionConfig as ConnectionConfig
    from ._config import HealthCheckConfig as HealthCheckConfig
    from ._config import ManagerConfig as ManagerConfig
    from ._config import PluginConfig as PluginConfig
    from ._config import RateLimitConfig as RateLimitConfig
    from ._config import RetryConfig as RetryConfig
    from ._config import SecurityAuditConfig as SecurityAuditConfig
    from ._config import SecurityConfig as SecurityConfig
    from ._config import TracingConfig as TracingConfig
    from ._config import default_manager_config as default_manager_config
    from ._policies import BreakerListener as BreakerListener
    from ._policies import BreakerState as BreakerState
    from ._policies import BreakerStateChange as BreakerStateChange
    from ._policies import CircuitBreaker as CircuitBreaker
    from ._policies import ErrorClassifier as ErrorClassifier
    from ._policies import default_error_classifier as default_error_classifier
    from ._sdk.grpc_server import GrpcPluginServer as GrpcPluginServer
    from ._sdk.grpc_server import serve_grpc as serve_grpc
    from ._sources import grpc as grpc
    from ._sources import subprocess as subprocess
    from ._tls import ServerTLSConfig as ServerTLSConfig
    from ._tls import TLSConfig as TLSConfig
    from ._transports._restarts import RestartPolicy as RestartPolicy
    from ._transports.subprocess import SubprocessOptions as SubprocessOptions

    __version__: str
    from ._builder import ManagerBuilder as ManagerBuilder
    from ._builder import development as development
    from ._builder import production as production
    from ._builder import simple as simple
    from ._handle import PluginHandle as PluginHandle
    from ._manager import AsyncPluginManager as AsyncPluginManager
    from ._policies import Policy as Policy
    from ._run import run as run
    from ._security import AuditEvent as AuditEvent
    from ._security import AuditLog as AuditLog
    from ._security import AuditRow as AuditRow
    from ._security import ChainReport as ChainReport
    from ._security import LaunchHook as LaunchHook
    from ._security import SecurityEngine as SecurityEngine
    from ._security import Whitelist as Whitelist
    from ._security import WhitelistEntry as WhitelistEntry
    from ._security import load_whitelist as load_whitelist
    from ._sources import PluginSource as PluginSource
    from ._sources import in_process as in_process
    from ._sync import BlockingPluginHandle as BlockingPluginHandle
    from ._sync import PluginManager as PluginManager

# Host-side names load on first use, so a plugin process that runs `import plugwire` to call
# `plugwire.serve()` never imports the manager, the transports or the policies.
_LAZY: dict[str, str] = {
    "TLSConfig": "._tls",
    "ServerTLSConfig": "._tls",
    "grpc": "._sources",
    "serve_grpc": "._sdk.grpc_server",
    "GrpcPluginServer": "._sdk.grpc_server",
    "CredentialVerifier": "._auth",
    "CredentialProvider": "._auth",
    "default_manager_config": "._config",
    "TracingConfig": "._config",
    "SecurityConfig": "._config",
    "SecurityAuditConfig": "._config",
    "RetryConfig": "._config",
    "RateLimitConfig": "._config",
    "PluginConfig": "._config",
    "ManagerConfig": "._config",
    "HealthCheckConfig": "._config",
    "ConnectionConfig": "._config",
    "CircuitBreakerConfig": "._config",
    "AuthConfig": "._config",
    "SubprocessOptions": "._transports.subprocess",
    "RestartPolicy": "._transports._restarts",
    "subprocess": "._sources",
    "default_error_classifier": "._policies",
    "ErrorClassifier": "._policies",
    "CircuitBreaker": "._policies",
    "BreakerStateChange": "._policies",
    "BreakerState": "._policies",
    "BreakerListener": "._policies",
    "load_whitelist": "._security",
    "WhitelistEntry": "._security",
    "Whitelist": "._security",
    "SecurityEngine": "._security",
    "LaunchHook": "._security",
    "ChainReport": "._security",
    "AuditRow": "._security",
    "AuditLog": "._security",
    "AuditEvent": "._security",
    "ManagerBuilder": "._builder",
    "development": "._builder",
    "production": "._builder",
    "simple": "._builder",
    "AsyncPluginManager": "._manager",
    "PluginHandle": "._handle",
    "Policy": "._policies",
    "PluginSource": "._sources",
    "in_process": "._sources",
    "BlockingPluginHandle": "._sync",
    "PluginManager": "._sync",
    "run": "._run",
}


__all__ = [
    "AsyncPluginManager",
    "AuditEvent",
    "AuditLog",
    "AuditRow",
    "AuthConfig",
    "AuthMethod",
    "AuthenticationError",
    "BlockingPluginHandle",
    "BreakerListener",
    "BreakerState",
    "BreakerStateChange",
    "CallError",
    "ChainReport",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "ConfigFileError",
    "ConnectionConfig",
    "CredentialProvider",
    "CredentialVerifier",
    "ErrorClassifier",
    "ErrorCode",
    "ExecutionContext",
    "ExecutionError",
    "GrpcPluginServer",
    "HealthCheckConfig",
    "HealthError",
    "HealthStatus",
    "InvalidPluginError",
    "LaunchHook",
    "ManagerBuilder",
    "ManagerClosedError",
    "ManagerConfig",
    "ManagerNotStartedError",
    "MissingDependencyError",
    "OutcomeUnknownError",
    "Plugin",
    "PluginAlreadyRegisteredError",
    "PluginConfig",
    "PluginConnectingError",
    "PluginDisabledError",
    "PluginError",
    "PluginHandle",
    "PluginInfo",
    "PluginManager",
    "PluginNotFoundError",
    "PluginSource",
    "PluginTimeoutError",
    "PluginUnavailableError",
    "Policy",
    "ProcessError",
    "ProtocolError",
    "RateLimitConfig",
    "RateLimitError",
    "RateLimitedError",
    "RequestSent",
    "RequestValidationError",
    "ResponseValidationError",
    "RestartPolicy",
    "RetryConfig",
    "SecurityAuditConfig",
    "SecurityConfig",
    "SecurityEngine",
    "SecurityError",
    "SecurityPolicy",
    "ServerTLSConfig",
    "Status",
    "SubprocessOptions",
    "TLSConfig",
    "TracingConfig",
    "Transport",
    "TransportError",
    "TypedCodec",
    "Whitelist",
    "WhitelistEntry",
    "__version__",
    "default_error_classifier",
    "default_manager_config",
    "development",
    "grpc",
    "in_process",
    "load_whitelist",
    "production",
    "run",
    "serve",
    "serve_grpc",
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
    if module is None:
        raise AttributeError(f"module 'plugwire' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})
