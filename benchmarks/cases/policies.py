"""Policies (issue 5): what the resilience policies add to a subprocess round trip.

The same small call to the same subprocess echo plugin, once with every policy on (a rate
limit far above what the benchmark reaches, the circuit breaker, retry and the per-attempt
timeout) and once with each of them off (no breaker, no retries, no rate limit, and
`request_timeout=0` so no timeout is set).

Both sides call the *same plugin process* through two managers: one subprocess transport,
started here, is lent to each manager. Two processes would differ by more than the policies
do: the same echo measured in two fresh process pairs differs by up to ±3 µs of a ~35 µs round
trip (where each process's memory lands in the CPU's caches), which is the whole 10% budget.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import plugwire
from plugwire._transports.base import BaseTransport, Call

from .._model import Env, Op, Side, at_most, case
from ._plugin import REQUEST, Echo, echo_request, plugin_config, plugin_source

_ALL_ON: dict[str, Any] = {
    "rate_limit": plugwire.RateLimitConfig(enabled=True, requests_per_second=1e9, burst_size=1_000_000),
}
_ALL_OFF: dict[str, Any] = {
    "circuit_breaker": plugwire.CircuitBreakerConfig(enabled=False),
    "retry": plugwire.RetryConfig(max_retries=0),
    "rate_limit": plugwire.RateLimitConfig(enabled=False),
    "connection": plugwire.ConnectionConfig(max_connections=1, request_timeout=0),
}


class _LentTransport(BaseTransport):
    """A started transport lent to a manager: calls and health checks go straight to the
    owner's (its own bound `call`, so the borrower's pipeline ends exactly where the owner's
    would); starting hands back the owner's info; closing gives the loan back."""

    enforces_timeout = True  # as the subprocess transport it lends

    def __init__(self, loans: _Loans) -> None:
        self.loans = loans
        self.returned = False
        self.call = loans.owner.call  # type: ignore[method-assign]

    async def start(self) -> plugwire.PluginInfo:
        return self.loans.info

    async def call(self, call: Call) -> Any:  # replaced by the owner's bound method in __init__
        return await self.loans.owner.call(call)

    async def health(self) -> plugwire.HealthStatus:
        return await self.loans.owner.health()

    async def aclose(self) -> None:
        if not self.returned:
            self.returned = True
            await self.loans.give_back()

    async def restart(self) -> plugwire.PluginInfo:
        raise RuntimeError("a lent transport is restarted by its owner only")


class _Loans:
    """A plugin source lending one started transport to several managers; the last manager
    to give its loan back (at its shutdown) stops the plugin process."""

    def __init__(self, source: plugwire.PluginSource, owner: BaseTransport, info: plugwire.PluginInfo) -> None:
        self.source = source
        self.owner = owner
        self.info = info
        self.out = 0

    def configure(self, name: str, base: plugwire.PluginConfig) -> plugwire.PluginConfig:
        return self.source.configure(name, base)

    def create_transport(self, config: plugwire.PluginConfig, request_type: Any) -> BaseTransport:
        self.out += 1
        return _LentTransport(self)

    async def give_back(self) -> None:
        self.out -= 1
        if not self.out:
            await self.owner.aclose()


_SHARED: dict[int, tuple[_Loans, int]] = {}
"""The plugin process of a running case, by `id(env)`, with how many sides use it."""


@asynccontextmanager
async def _shared_plugin(env: Env) -> AsyncIterator[_Loans]:
    """The case's one echo plugin process, started by the first side to ask; when the last
    side leaves it is stopped (already, if every manager gave its loan back; closing twice
    is harmless)."""
    key = id(env)
    if key in _SHARED:
        loans, users = _SHARED[key]
        _SHARED[key] = (loans, users + 1)
    else:
        source = plugin_source(env)
        transport = source.create_transport(source.configure("echo", plugin_config("echo")), Echo)
        loans = _Loans(source, transport, await transport.start())
        _SHARED[key] = (loans, 1)
    try:
        yield loans
    finally:
        loans, users = _SHARED[key]
        if users > 1:
            _SHARED[key] = (loans, users - 1)
        else:
            del _SHARED[key]
            await loans.owner.aclose()


@asynccontextmanager
async def _echo_call(
    env: Env, policies: dict[str, Any], manager_config: plugwire.ManagerConfig | None = None
) -> AsyncIterator[Op]:
    """A manager (with `manager_config`) calling the case's shared echo plugin process with
    the plugin config `policies`; the op sends one echo."""
    manager: plugwire.AsyncPluginManager[Echo, Echo] = plugwire.AsyncPluginManager(Echo, Echo, manager_config)
    async with _shared_plugin(env) as loans, manager:
        await manager.register(loans, config=plugin_config("echo", **policies))
        if await manager.execute("echo", REQUEST) != REQUEST:
            raise RuntimeError("the subprocess echo plugin answered with a different message")
        yield partial(manager.execute, "echo", echo_request())


@case(
    "policies.subprocess",
    label="subprocess call, every policy on",
    baseline=Side("subprocess call, every policy off", partial(_echo_call, policies=_ALL_OFF)),
    target=at_most(1.10),
    note="issue 5: the policies add under 10% to a subprocess round trip: rate limit (enabled, "
    "1e9/s), circuit breaker, retry (3) and a 30 s per-attempt timeout, against breaker off, "
    "`max_retries=0`, no rate limit and `request_timeout=0`; both through the same plugin process.",
)
@asynccontextmanager
async def policies_subprocess(env: Env) -> AsyncIterator[Op]:
    async with _echo_call(env, _ALL_ON) as op:
        yield op
