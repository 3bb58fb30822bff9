"""Type-checked, never run: the resilience API used the way a user would."""

from __future__ import annotations

import plugwire
from plugwire import CircuitBreakerConfig, ExecutionContext, RetryConfig
from plugwire.policies import BreakerState, BreakerStateChange, CircuitBreaker, default_error_classifier
from plugwire.testing import FakeClock


def on_change(change: BreakerStateChange) -> None:
    print(change.plugin, change.old.value, change.new.value, change.reason)


def only_transport_errors(error: Exception) -> bool:
    return isinstance(error, plugwire.TransportError) or default_error_classifier(error)


async def main() -> None:
    clock = FakeClock()
    changes: list[BreakerStateChange] = []
    manager: plugwire.AsyncPluginManager[str, str] = (
        plugwire.production(str, str, clock=clock)
        .with_retry(RetryConfig(max_retries=5, idempotent=True))
        .with_circuit_breaker(failure_threshold=3)
        .with_rate_limit(requests_per_second=100.0, burst_size=10, wait=True)
        .with_health_check(interval=5.0)
        .build()
    )
    direct: plugwire.AsyncPluginManager[str, str] = plugwire.AsyncPluginManager(
        str, str, clock=clock, breaker_listeners=[changes.append, on_change]
    )
    async with manager, direct:
        answer: str = await manager.execute("x", "hi", ExecutionContext(timeout=1.0, total_timeout=3.0))
        breaker: CircuitBreaker | None = manager.circuit_breaker("x")
        if breaker is not None:
            breaker.classifier = only_transport_errors
            breaker.listeners.append(on_change)
            state: BreakerState = breaker.state
            trips: int = breaker.trips
            print(answer, state, trips, breaker.transitions[(BreakerState.CLOSED, BreakerState.OPEN)])
        statuses: dict[str, plugwire.HealthStatus] = manager.list_plugins()
        checked = await manager.health()
        print(statuses, checked)
    clock.advance(1.0)
    clock.advance_to(10.0)
    await clock.wait_for_sleepers(0)
    standalone = CircuitBreaker(CircuitBreakerConfig(), plugin="p", clock=clock, listeners=[on_change])
    print(standalone.state)
