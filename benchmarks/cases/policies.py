"""Policies (issue 5): what the resilience policies add to a subprocess round trip.

The same small call to the same subprocess echo plugin, once with every policy on (a rate
limit far above what the benchmark reaches, the circuit breaker, retry and the per-attempt
timeout) and once with each of them off (no breaker, no retries, no rate limit, and
`request_timeout=0` so no timeout scope is opened).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import plugwire

from .._model import Env, Op, Side, at_most, case
from ._plugin import echo_request, plugin_config, running_manager

_ALL_ON: dict[str, Any] = {
    "rate_limit": plugwire.RateLimitConfig(enabled=True, requests_per_second=1e9, burst_size=1_000_000),
}
_ALL_OFF: dict[str, Any] = {
    "circuit_breaker": plugwire.CircuitBreakerConfig(enabled=False),
    "retry": plugwire.RetryConfig(max_retries=0),
    "rate_limit": plugwire.RateLimitConfig(enabled=False),
    "connection": plugwire.ConnectionConfig(max_connections=1, request_timeout=0),
}


@asynccontextmanager
async def _echo_call(env: Env, policies: dict[str, Any]) -> AsyncIterator[Op]:
    async with running_manager(env, plugin_config("echo", **policies)) as manager:
        yield partial(manager.execute, "echo", echo_request())


@case(
    "policies.subprocess",
    label="subprocess call, every policy on",
    baseline=Side("subprocess call, every policy off", partial(_echo_call, policies=_ALL_OFF)),
    target=at_most(1.10),
    note="issue 5: the policies add under 10% to a subprocess round trip: rate limit (enabled, "
    "1e9/s), circuit breaker, retry (3) and a 30 s per-attempt timeout, against breaker off, "
    "`max_retries=0`, no rate limit and `request_timeout=0`.",
)
@asynccontextmanager
async def policies_subprocess(env: Env) -> AsyncIterator[Op]:
    async with _echo_call(env, _ALL_ON) as op:
        yield op
