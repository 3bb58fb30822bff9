"""The error tree: every failure plugwire reports, each with a stable numeric code.

```
PluginError                              .code .retryable .plugin .details .request_sent
├── ConfigError (1000-1099)              also ValueError
│   ├── InvalidPluginError (1002)        also TypeError
│   ├── PluginAlreadyRegisteredError (1010)
│   └── MissingDependencyError (1011)    also ImportError
├── AuthenticationError (1100-1199)
├── CallError (1200-1299)
│   ├── PluginNotFoundError (1201)       also LookupError
│   ├── PluginDisabledError (1202)
│   ├── ExecutionError (1203)
│   ├── PluginTimeoutError (1204)        also TimeoutError
│   ├── RequestValidationError (1205)    also ValueError
│   ├── ResponseValidationError (1206)
│   ├── OutcomeUnknownError (1207)
│   ├── ManagerClosedError (1208)       also RuntimeError
│   ├── ManagerNotStartedError (1209)   also RuntimeError
│   ├── ReplacementError (1210)
│   └── DrainCancelledError (1211)
├── TransportError (1300-1399)
├── CircuitBreakerError (1400-1499)
│   └── CircuitOpenError (1401)
├── RateLimitError (1500-1599)
│   └── RateLimitedError (1501)
├── HealthError (1600-1699)
│   └── PluginUnavailableError (1602)
│       └── PluginConnectingError (1603)
├── ConfigFileError (1700-1799)
├── SecurityError (1800-1899)
├── ProcessError (1900-1999)
└── ProtocolError (2000-2099)
```

Every code is a member of `ErrorCode`; `docs/errors.md` documents each one and a test keeps
the two in step. A raise site may pass a more precise code from its family's range.

Every error also says whether the request of the call it ends may have reached the plugin
(`RequestSent`): the retry policy repeats a call whose outcome is unknown only when the call is
idempotent. The transport sets it where it knows; each class has a default for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._codes import ErrorCode, RequestSent

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
    "answered",
    "error_class_for_code",
    "error_from_code",
]


class PluginError(Exception):
    """The root of every error plugwire raises.

    Attributes:
        code: The stable numeric code (see `ErrorCode` and docs/errors.md).
        retryable: Whether repeating the same call may succeed.
        plugin: The plugin the error concerns, when there is one.
        details: Extra structured facts (never secrets).
        request_sent: Whether the failed call's request may have reached the plugin.
    """

    default_code: ClassVar[int] = ErrorCode.CONFIG_INVALID
    code_range: ClassVar[tuple[int, int]] = (1000, 2099)
    default_retryable: ClassVar[bool] = False
    default_request_sent: ClassVar[RequestSent] = RequestSent.NOT_APPLICABLE

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        retryable: bool | None = None,
        plugin: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_sent: RequestSent | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        chosen = self.default_code if code is None else int(code)
        low, high = self.code_range
        if not low <= chosen <= high:
            raise ValueError(f"{type(self).__name__} takes codes {low}-{high}, not {chosen}")
        self.code = chosen
        self.retryable = self.default_retryable if retryable is None else retryable
        self.plugin = plugin
        self.details: dict[str, Any] = dict(details or {})
        self.request_sent = self.default_request_sent if request_sent is None else request_sent

    def __str__(self) -> str:
        # What the message already says is not said again: the plugin it names, a cause it quotes.
        named = self.plugin and f"plugin {self.plugin!r}" not in self.message
        text = f"[{self.code}] {self.message}" + (f" (plugin {self.plugin!r})" if named else "")
        cause = self.__cause__
        if cause is not None:
            quoted = cause.message if isinstance(cause, PluginError) else str(cause)
            if quoted and quoted in self.message:
                code = f" [{cause.code}]" if isinstance(cause, PluginError) else ""
                text += f": caused by {type(cause).__name__}{code}"
            else:
                text += f": caused by {type(cause).__name__}: {cause}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r}, plugin={self.plugin!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        state = (self.message, self.code, self.retryable, self.plugin, self.details, self.request_sent.value)
        return (_rebuild, (type(self), state))


def _rebuild(cls: type[PluginError], state: tuple[Any, ...]) -> PluginError:
    message, code, retryable, plugin, details, *rest = state  # (pickled before `request_sent`: five)
    sent = RequestSent(rest[0]) if rest else None
    return cls(message, code=code, retryable=retryable, plugin=plugin, details=details, request_sent=sent)


class ConfigError(PluginError, ValueError):
    """Configuration is invalid; the message names the path of the bad value."""

    default_code = ErrorCode.CONFIG_INVALID
    code_range = (1000, 1099)


class InvalidPluginError(ConfigError, TypeError):
    """The object given as a plugin is not one (no `info()`/`execute()`, or a bad `info()`)."""

    default_code = ErrorCode.CONFIG_WRONG_TYPE


class PluginAlreadyRegisteredError(ConfigError):
    """A plugin with that name is already registered."""

    default_code = ErrorCode.PLUGIN_ALREADY_REGISTERED


class MissingDependencyError(ConfigError, ImportError):
    """A feature needs an optional extra that is not installed."""

    default_code = ErrorCode.MISSING_DEPENDENCY


class AuthenticationError(PluginError):
    """Credentials were missing, malformed or wrong."""

    default_code = ErrorCode.AUTH_FAILED
    code_range = (1100, 1199)


class CallError(PluginError):
    """A call could not be completed."""

    default_code = ErrorCode.CALL_FAILED
    code_range = (1200, 1299)


class PluginNotFoundError(CallError, LookupError):
    """No plugin is registered under that name."""

    default_code = ErrorCode.PLUGIN_NOT_FOUND
    default_request_sent = RequestSent.NO


class PluginDisabledError(CallError):
    """The plugin is registered but disabled."""

    default_code = ErrorCode.PLUGIN_DISABLED
    default_request_sent = RequestSent.NO


class ExecutionError(CallError):
    """The plugin raised while executing the request."""

    default_code = ErrorCode.EXECUTION_FAILED
    default_request_sent = RequestSent.YES


class PluginTimeoutError(CallError, TimeoutError):
    """The call did not finish within its timeout."""

    default_code = ErrorCode.TIMEOUT
    default_request_sent = RequestSent.MAYBE
    default_retryable = True


class RequestValidationError(CallError, ValueError):
    """The request does not match the plugin's request type."""

    default_code = ErrorCode.REQUEST_INVALID
    default_request_sent = RequestSent.NO


class ResponseValidationError(CallError):
    """The plugin answered with a value that does not match the response type."""

    default_code = ErrorCode.RESPONSE_INVALID
    default_request_sent = RequestSent.YES


class OutcomeUnknownError(CallError):
    """The request reached the plugin, which then failed before answering.

    The work may or may not have been done, so only idempotent calls are retried.
    """

    default_code = ErrorCode.OUTCOME_UNKNOWN
    default_request_sent = RequestSent.MAYBE
    default_retryable = True


class ManagerClosedError(CallError, RuntimeError):
    """The manager is shut down (or shutting down) and takes no more calls."""

    default_code = ErrorCode.MANAGER_CLOSED
    default_request_sent = RequestSent.NO


class ManagerNotStartedError(CallError, RuntimeError):
    """The manager was never started, so the plugins of its config are not registered yet."""

    default_code = ErrorCode.MANAGER_NOT_STARTED


class ReplacementError(CallError):
    """A new generation of a plugin did not start, or failed its first health check; the old
    generation keeps serving. The cause is the start's own error."""

    default_code = ErrorCode.REPLACEMENT_FAILED


class DrainCancelledError(CallError):
    """A call still running on a replaced (or removed) generation when its drain timeout ran
    out was cancelled; the plugin was sent `cancel`. The new generation serves a retry."""

    default_code = ErrorCode.DRAIN_CANCELLED
    default_request_sent = RequestSent.MAYBE
    default_retryable = True


class TransportError(PluginError):
    """The transport to the plugin failed."""

    default_code = ErrorCode.TRANSPORT_FAILED
    default_request_sent = RequestSent.MAYBE
    code_range = (1300, 1399)
    default_retryable = True


class CircuitBreakerError(PluginError):
    """A circuit breaker refused or failed a call."""

    default_code = ErrorCode.CIRCUIT_BREAKER
    code_range = (1400, 1499)


class CircuitOpenError(CircuitBreakerError):
    """The plugin's circuit is open: the call was refused without reaching the plugin."""

    default_code = ErrorCode.CIRCUIT_OPEN
    default_request_sent = RequestSent.NO


class RateLimitError(PluginError):
    """A rate limit refused a call."""

    default_code = ErrorCode.RATE_LIMIT
    code_range = (1500, 1599)


class RateLimitedError(RateLimitError):
    """The plugin's rate limit is exhausted."""

    default_code = ErrorCode.RATE_LIMITED
    default_request_sent = RequestSent.NO


class HealthError(PluginError):
    """A health check failed, or the plugin is not healthy enough to call."""

    default_code = ErrorCode.HEALTH_FAILED
    code_range = (1600, 1699)


class PluginUnavailableError(HealthError):
    """The plugin is offline; calls fail fast until it is reloaded or re-registered."""

    default_code = ErrorCode.PLUGIN_OFFLINE
    default_request_sent = RequestSent.NO


class PluginConnectingError(PluginUnavailableError):
    """The plugin has not been reached yet (registered while down); the request was not
    sent, and the health monitor keeps connecting in the background."""

    default_code = ErrorCode.PLUGIN_CONNECTING
    default_retryable = True


class ConfigFileError(PluginError):
    """A configuration file could not be found, read or parsed, or a reload failed."""

    default_code = ErrorCode.CONFIG_FILE
    code_range = (1700, 1799)


class SecurityError(PluginError):
    """A security check refused a plugin."""

    default_code = ErrorCode.SECURITY
    code_range = (1800, 1899)


class ProcessError(PluginError):
    """A plugin process could not be started, supervised or stopped."""

    default_code = ErrorCode.PROCESS
    code_range = (1900, 1999)


class ProtocolError(PluginError):
    """A peer broke the wire protocol."""

    default_code = ErrorCode.PROTOCOL
    code_range = (2000, 2099)


class ObservabilityError(PluginError):
    """Metrics or tracing could not do what was asked (an exporter's port is taken, metrics
    are off). Never raised by a call: exporters and tracing fail apart from the call path."""

    default_code = ErrorCode.OBSERVABILITY
    code_range = (2100, 2199)


class MetricsDisabledError(ObservabilityError):
    """Metrics were read while they are off (turn them on with `with_metrics()`, the
    config's `metrics.enabled`, or by registering an exporter)."""

    default_code = ErrorCode.METRICS_DISABLED


class ExporterError(ObservabilityError):
    """A metrics exporter could not start (its port is in use, its endpoint is invalid)."""

    default_code = ErrorCode.EXPORTER_START_FAILED


_FAMILIES: tuple[type[PluginError], ...] = (
    ConfigError,
    AuthenticationError,
    CallError,
    TransportError,
    CircuitBreakerError,
    RateLimitError,
    HealthError,
    ConfigFileError,
    SecurityError,
    ProcessError,
    ProtocolError,
    ObservabilityError,
)


def _leaf_classes() -> dict[int, type[PluginError]]:
    leaves: dict[int, type[PluginError]] = {}
    stack: list[type[PluginError]] = list(_FAMILIES)
    while stack:
        cls = stack.pop()
        leaves.setdefault(int(cls.default_code), cls)
        stack.extend(cls.__subclasses__())
    return leaves


def error_class_for_code(code: int) -> type[PluginError]:
    """Return the most specific error class for a code (used when a peer sends a code).

    Args:
        code: A numeric error code, possibly from another process.

    Returns:
        The class whose default code it is, else the family whose range holds it, else
        `CallError` for codes outside every range.
    """
    exact = _leaf_classes().get(code)
    if exact is not None:
        return exact
    for family in _FAMILIES:
        low, high = family.code_range
        if low <= code <= high:
            return family
    return CallError


def error_from_code(
    code: int,
    message: str,
    *,
    retryable: bool | None = None,
    plugin: str | None = None,
    details: Mapping[str, Any] | None = None,
    request_sent: RequestSent | None = None,
) -> PluginError:
    """Build the error a peer reported by code, message and retryability.

    A code outside every family becomes an `ExecutionError` that keeps the peer's code in
    ``details["remote_code"]``, so nothing the peer said is lost. `request_sent` defaults to
    the class's (a transport passes `answered(code)` for a plugin's answer).
    """
    cls = error_class_for_code(code)
    low, high = cls.code_range
    if low <= code <= high:
        return cls(message, code=code, retryable=retryable, plugin=plugin, details=details, request_sent=request_sent)
    extra = dict(details or {})
    extra["remote_code"] = code
    return ExecutionError(message, retryable=retryable, plugin=plugin, details=extra, request_sent=request_sent)


def answered(code: int) -> RequestSent:
    """`request_sent` of the error a plugin answered a call with: `YES`, unless the plugin
    says it stopped mid-call (1204 its deadline passed, 1207 it was cancelled), which leaves
    the outcome unknown (`MAYBE`)."""
    return RequestSent.MAYBE if code in _MID_CALL else RequestSent.YES


_MID_CALL = frozenset({ErrorCode.TIMEOUT, ErrorCode.OUTCOME_UNKNOWN})
