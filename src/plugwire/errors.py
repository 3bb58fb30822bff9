"""Every error plugwire raises: the `PluginError` tree, its `ErrorCode`s and `RequestSent`.

The tree is drawn in `plugwire._errors`; `docs/errors.md` documents every code. The root and
the errors a caller commonly catches are also at the top level (`plugwire.PluginError`, ...).
"""

from __future__ import annotations

from ._errors import AuthenticationError as AuthenticationError
from ._errors import CallError as CallError
from ._errors import CircuitBreakerError as CircuitBreakerError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigError as ConfigError
from ._errors import ConfigFileError as ConfigFileError
from ._errors import DrainCancelledError as DrainCancelledError
from ._errors import ErrorCode as ErrorCode
from ._errors import ExecutionError as ExecutionError
from ._errors import ExporterError as ExporterError
from ._errors import HealthError as HealthError
from ._errors import InvalidPluginError as InvalidPluginError
from ._errors import ManagerClosedError as ManagerClosedError
from ._errors import ManagerNotStartedError as ManagerNotStartedError
from ._errors import MetricsDisabledError as MetricsDisabledError
from ._errors import MissingDependencyError as MissingDependencyError
from ._errors import ObservabilityError as ObservabilityError
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
from ._errors import ReplacementError as ReplacementError
from ._errors import RequestSent as RequestSent
from ._errors import RequestValidationError as RequestValidationError
from ._errors import ResponseValidationError as ResponseValidationError
from ._errors import SecurityError as SecurityError
from ._errors import TransportError as TransportError

__all__ = [
    "AuthenticationError",
    "CallError",
    "CircuitBreakerError",
    "CircuitOpenError",
    "ConfigError",
    "ConfigFileError",
    "DrainCancelledError",
    "ErrorCode",
    "ExecutionError",
    "ExporterError",
    "HealthError",
    "InvalidPluginError",
    "ManagerClosedError",
    "ManagerNotStartedError",
    "MetricsDisabledError",
    "MissingDependencyError",
    "ObservabilityError",
    "OutcomeUnknownError",
    "PluginAlreadyRegisteredError",
    "PluginConnectingError",
    "PluginDisabledError",
    "PluginError",
    "PluginNotFoundError",
    "PluginTimeoutError",
    "PluginUnavailableError",
    "ProcessError",
    "ProtocolError",
    "RateLimitError",
    "RateLimitedError",
    "ReplacementError",
    "RequestSent",
    "RequestValidationError",
    "ResponseValidationError",
    "SecurityError",
    "TransportError",
]
