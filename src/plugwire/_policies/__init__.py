"""Policies around every call, each in its own module, composed by `build_pipeline`."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

from .._clock import Clock, system_clock
from .._config import PluginConfig
from .._types import LoggerLike
from .breaker import (
    BreakerListener,
    BreakerState,
    BreakerStateChange,
    CircuitBreaker,
    CircuitBreakerPolicy,
    ErrorClassifier,
    default_error_classifier,
)
from .chain import Handler, Policy, compose
from .ratelimit import RateLimitPolicy, TokenBucket
from .retry import RetryPolicy, is_retryable
from .timeout import TimeoutPolicy

__all__ = [
    "BreakerListener",
    "BreakerState",
    "BreakerStateChange",
    "CircuitBreaker",
    "CircuitBreakerPolicy",
    "ErrorClassifier",
    "Handler",
    "Policy",
    "RateLimitPolicy",
    "RetryPolicy",
    "TimeoutPolicy",
    "TokenBucket",
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


def build_pipeline(
    config: PluginConfig,
    terminal: Handler,
    *,
    extra: Sequence[Policy] = (),
    clock: Clock = system_clock,
    breaker: CircuitBreaker | None = None,
    rng: Callable[[], float] = random.random,
    transport_timeouts: bool = False,
) -> Handler:
    """The call path for one plugin, outermost first:

    user policies (`extra`, in order) → rate limit → circuit breaker → retry →
    timeout (per attempt) → `terminal` (the transport).

    A policy the config turns off is not built at all, so it costs nothing: the rate limit
    unless `rate_limit.enabled`, the breaker unless `circuit_breaker.enabled`. Retry is
    always built (a call's `ExecutionContext.max_retries` may ask for retries when the
    config has none) and steps aside at once when there are none to make; the timeout is
    always built (it also enforces `ExecutionContext.total_timeout`).

    Args:
        config: The plugin's configuration.
        terminal: Delivers the call to the transport.
        extra: User-supplied policies; they run outside the built-in ones, in order.
        clock: Where every policy reads time and sleeps.
        breaker: The breaker to use (to observe it from outside); by default one is made
            from the config with `make_breaker` when enabled.
        rng: The jitter source of the retry policy.
        transport_timeouts: `terminal` enforces `Call.timeout` itself
            (`BaseTransport.enforces_timeout`); the timeout policy then sets no timer.
    """
    policies: list[Policy] = list(extra)
    if config.rate_limit.enabled:
        policies.append(RateLimitPolicy(config.rate_limit, clock, max_wait=config.connection.request_timeout or None))
    if breaker is None:
        breaker = make_breaker(config, clock=clock)
    if breaker is not None:
        policies.append(CircuitBreakerPolicy(breaker, config.connection.request_timeout))
    policies.append(RetryPolicy(config.retry, clock, rng=rng))
    policies.append(TimeoutPolicy(config.connection.request_timeout, clock, transport_enforced=transport_timeouts))
    return compose(policies, terminal)
