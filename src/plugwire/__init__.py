"""plugwire: typed, out-of-process plugins with resilience, security and observability."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._auth import CredentialProvider as CredentialProvider
from ._auth import CredentialVerifier as CredentialVerifier
from ._builder import ManagerBuilder as ManagerBuilder
from ._builder import development as development
from ._builder import production as production
from ._builder import simple as simple
from ._codec import TypedCodec as TypedCodec
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
from ._errors import AuthenticationError as AuthenticationError
from ._errors import CallError as CallError
from ._errors import CircuitBreakerError as CircuitBreakerError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigError as ConfigError
from ._errors import ConfigFileError as ConfigFileError
from ._errors import ErrorCode as ErrorCode
from ._errors import ExecutionError as ExecutionError
from ._errors import HealthError as HealthError
from ._errors import ManagerClosedError as ManagerClosedError
from ._errors import MissingDependencyError as MissingDependencyError
from ._errors import OutcomeUnknownError as OutcomeUnknownError
from ._errors import PluginAlreadyRegisteredError as PluginAlreadyRegisteredError
from ._errors import PluginDisabledError as PluginDisabledError
from ._errors import PluginError as PluginError
from ._errors import PluginNotFoundError as PluginNotFoundError
from ._errors import PluginTimeoutError as PluginTimeoutError
from ._errors import PluginUnavailableError as PluginUnavailableError
from ._errors import ProcessError as ProcessError
from ._errors import ProtocolError as ProtocolError
from ._errors import RateLimitedError as RateLimitedError
from ._errors import RateLimitError as RateLimitError
from ._errors import RequestValidationError as RequestValidationError
from ._errors import ResponseValidationError as ResponseValidationError
from ._errors import SecurityError as SecurityError
from ._errors import TransportError as TransportError
from ._manager import AsyncPluginManager as AsyncPluginManager
from ._manager import PluginHandle as PluginHandle
from ._models import AuthMethod as AuthMethod
from ._models import ExecutionContext as ExecutionContext
from ._models import HealthStatus as HealthStatus
from ._models import Plugin as Plugin
from ._models import PluginInfo as PluginInfo
from ._models import SecurityPolicy as SecurityPolicy
from ._models import Status as Status
from ._models import Transport as Transport
from ._policies import Policy as Policy
from ._sdk.grpc_server import GrpcPluginServer as GrpcPluginServer
from ._sdk.grpc_server import serve_grpc as serve_grpc
from ._sources import PluginSource as PluginSource
from ._sources import grpc as grpc
from ._sources import in_process as in_process
from ._sync import BlockingPluginHandle as BlockingPluginHandle
from ._sync import PluginManager as PluginManager
from ._tls import ServerTLSConfig as ServerTLSConfig
from ._tls import TLSConfig as TLSConfig

try:
    __version__ = version("plugwire")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "AsyncPluginManager",
    "AuthConfig",
    "AuthMethod",
    "AuthenticationError",
    "BlockingPluginHandle",
    "CallError",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitOpenError",
    "ConfigError",
    "ConfigFileError",
    "ConnectionConfig",
    "CredentialProvider",
    "CredentialVerifier",
    "ErrorCode",
    "ExecutionContext",
    "ExecutionError",
    "GrpcPluginServer",
    "HealthCheckConfig",
    "HealthError",
    "HealthStatus",
    "ManagerBuilder",
    "ManagerClosedError",
    "ManagerConfig",
    "MissingDependencyError",
    "OutcomeUnknownError",
    "Plugin",
    "PluginAlreadyRegisteredError",
    "PluginConfig",
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
    "RequestValidationError",
    "ResponseValidationError",
    "RetryConfig",
    "SecurityAuditConfig",
    "SecurityConfig",
    "SecurityError",
    "SecurityPolicy",
    "ServerTLSConfig",
    "Status",
    "TLSConfig",
    "TracingConfig",
    "Transport",
    "TransportError",
    "TypedCodec",
    "__version__",
    "default_manager_config",
    "development",
    "grpc",
    "in_process",
    "production",
    "serve_grpc",
    "simple",
]
