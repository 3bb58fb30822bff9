"""The policies around every call: the per-plugin `CallPipeline` and its plain parts, and
the user middleware (`Policy`) that wraps it."""

from __future__ import annotations

from collections.abc import Iterable

from .._clock import Clock, system_clock
from .._config import PluginConfig
from .._types import LoggerLike
from .breaker import (
    BreakerListener,
    BreakerState,
    BreakerStateChange,
    CircuitBreaker,
    ErrorClassifier,
    Ticket,
    default_error_classifier,
)
from .chain import Handler, Policy, compose
from .pipeline import CallPipeline, build_call_pipeline, build_pipeline
from .ratelimit import RateLimiter, TokenBucket
from .retry import RetrySchedule, is_retryable
from .timeout import AttemptTimeout

__all__ = [
    "AttemptTimeout",
    "BreakerListener",
    "BreakerState",
    "BreakerStateChange",
    "CallPipeline",
    "CircuitBreaker",
    "ErrorClassifier",
    "Handler",
    "Policy",
    "RateLimiter",
    "RetrySchedule",
    "Ticket",
    "TokenBucket",
    "build_call_pipeline",
    "build_pipeline",
    "compose",
    "default_error_classifier",
    "is_retryable",
    "make_breaker",
]


def make_breaker(
    config: PluginConfig,
    *,
    clock: Clock = system_clock,
    classifier: ErrorClassifier = default_error_classifier,
    listeners: Iterable[BreakerListener] = (),
    logger: LoggerLike | None = None,
) -> CircuitBreaker | None:
    """The circuit breaker a plugin's config asks for, or None when it is disabled."""
    if not config.circuit_breaker.enabled:
        return None
    return CircuitBreaker(
        config.circuit_breaker,
        plugin=config.name,
        clock=clock,
        classifier=classifier,
        listeners=listeners,
        logger=logger,
    )
