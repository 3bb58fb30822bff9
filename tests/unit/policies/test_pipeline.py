"""The pipeline: user policies, rate limit, breaker, retry, timeout, transport — in that order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plugwire import (
    CircuitBreakerConfig,
    CircuitOpenError,
    ExecutionContext,
    PluginConfig,
    RateLimitConfig,
    RateLimitedError,
    RetryConfig,
    TransportError,
)
from plugwire._policies import (
    CircuitBreakerPolicy,
    Handler,
    RateLimitPolicy,
    RetryPolicy,
    TimeoutPolicy,
    build_pipeline,
)
from plugwire.errors import RequestSent
from plugwire.policies import CircuitBreaker
from plugwire.testing import Call, FakeClock


def make_call() -> Call:
    return Call(plugin="p", payload=b"x", context=ExecutionContext(request_id="r"))


def chain(handler: Handler) -> list[Any]:
    """The policies of a built pipeline, outermost first."""
    found = []
    while hasattr(handler, "policy"):
        found.append(handler.policy)
        handler = handler.call_next
    return found


class Tag:
    """A user policy that records that it ran."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name

    async def __call__(self, call: Call, call_next: Handler) -> Any:
        self.log.append(self.name)
        return await call_next(call)


async def terminal(call: Call) -> Any:
    return b"ok"


def test_every_policy_in_the_documented_order_with_user_policies_outermost() -> None:
    config = PluginConfig(name="p", rate_limit=RateLimitConfig(enabled=True))
    log: list[str] = []
    extras = [Tag(log, "a"), Tag(log, "b")]
    built = chain(build_pipeline(config, terminal, extra=extras, clock=FakeClock()))
    assert built[:2] == extras
    assert [type(p) for p in built[2:]] == [RateLimitPolicy, CircuitBreakerPolicy, RetryPolicy, TimeoutPolicy]


def test_disabled_policies_are_not_built_at_all() -> None:
    config = PluginConfig(name="p", circuit_breaker=CircuitBreakerConfig(enabled=False))
    assert [type(p) for p in chain(build_pipeline(config, terminal))] == [RetryPolicy, TimeoutPolicy]


def test_the_old_two_argument_form_still_builds_a_pipeline() -> None:
    assert TimeoutPolicy in [type(p) for p in chain(build_pipeline(PluginConfig(name="p"), terminal))]


async def test_user_policies_run_first_in_the_order_given() -> None:
    log: list[str] = []
    handler = build_pipeline(PluginConfig(name="p"), terminal, extra=[Tag(log, "first"), Tag(log, "second")])
    assert await handler(make_call()) == b"ok"
    assert log == ["first", "second"]


async def test_a_given_breaker_is_the_one_the_pipeline_uses() -> None:
    clock = FakeClock()
    config = PluginConfig(
        name="p",
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1, min_request_threshold=0),
        retry=RetryConfig(max_retries=0),
    )
    breaker = CircuitBreaker(config.circuit_breaker, plugin="p", clock=clock)

    async def down(call: Call) -> Any:
        raise TransportError("down", request_sent=RequestSent.NO)  # connection refused

    handler = build_pipeline(config, down, clock=clock, breaker=breaker)
    with pytest.raises(TransportError):
        await handler(make_call())
    assert breaker.trips == 1
    with pytest.raises(CircuitOpenError):
        await handler(make_call())


async def test_a_retried_call_counts_once_in_the_breaker_and_rate_limit_refusals_not_at_all() -> None:
    clock = FakeClock()
    config = PluginConfig(
        name="p",
        rate_limit=RateLimitConfig(enabled=True, requests_per_second=1, burst_size=2),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, min_request_threshold=0),
        retry=RetryConfig(max_retries=2, initial_interval=0, random_jitter=False),
    )
    attempts = 0

    async def down(call: Call) -> Any:
        nonlocal attempts
        attempts += 1
        raise TransportError("down", request_sent=RequestSent.NO)  # connection refused

    breaker = CircuitBreaker(config.circuit_breaker, plugin="p", clock=clock)
    handler = build_pipeline(config, down, clock=clock, breaker=breaker)
    with pytest.raises(TransportError):
        await handler(make_call())
    assert attempts == 3  # retry sits inside the breaker ...
    assert breaker.state == "closed"  # ... which saw one failure
    with pytest.raises(TransportError):
        await handler(make_call())
    assert breaker.state == "open"
    with pytest.raises(RateLimitedError):  # refused before the breaker: no third failure recorded
        await handler(make_call())
    assert breaker.trips == 1


async def drive(clock: FakeClock, task: asyncio.Future[Any]) -> Any:
    """Move the fake clock from one sleeper's deadline to the next until `task` ends."""
    while not task.done():
        due = clock.next_deadline
        if due is not None:
            clock.advance_to(due)
        await asyncio.sleep(0)
    return await task


def breaker_and_retry(clock: FakeClock, max_retries: int = 2) -> tuple[PluginConfig, CircuitBreaker]:
    config = PluginConfig(
        name="p",
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, min_request_threshold=0),
        retry=RetryConfig(max_retries=max_retries, initial_interval=1, random_jitter=False, multiplier=1),
    )
    return config, CircuitBreaker(config.circuit_breaker, plugin="p", clock=clock)


async def test_a_call_that_succeeds_on_a_retry_is_one_success_for_the_breaker() -> None:
    clock = FakeClock()
    config, breaker = breaker_and_retry(clock)
    seen: list[int] = []

    async def flaky(call: Call) -> Any:
        seen.append(call.attempt)
        if call.attempt < 3:
            raise TransportError("down", request_sent=RequestSent.NO)  # connection refused
        return b"ok"

    handler = build_pipeline(config, flaky, clock=clock, breaker=breaker)
    breaker.record((breaker._generation, None), TransportError("earlier"))  # one failure on the books
    assert await drive(clock, asyncio.ensure_future(handler(make_call()))) == b"ok"
    assert seen == [1, 2, 3]
    assert clock.monotonic() == 2.0  # two backoffs of 1 s on the pipeline's clock
    assert breaker._failures == 0  # the success reset the count: one more failure does not open it
    breaker.record((breaker._generation, None), TransportError("later"))
    assert breaker.state == "closed"


async def test_under_the_breaker_a_call_with_an_overall_deadline_stops_retrying_before_it() -> None:
    clock = FakeClock()
    config, breaker = breaker_and_retry(clock, max_retries=5)
    attempts = 0

    async def down(call: Call) -> Any:
        nonlocal attempts
        attempts += 1
        raise TransportError("down", request_sent=RequestSent.NO)  # connection refused

    handler = build_pipeline(config, down, clock=clock, breaker=breaker)
    call = Call(plugin="p", payload=b"x", context=ExecutionContext(request_id="r", total_timeout=2.5))
    with pytest.raises(TransportError) as caught:
        await drive(clock, asyncio.ensure_future(handler(call)))
    assert attempts == 3  # at 0 s, 1 s and 2 s; a fourth at 3 s would pass the deadline
    assert caught.value.details == {"attempts": 3, "elapsed": 2.0, "retry_stopped": "deadline"}
    assert "(3 attempts in 2s)" in str(caught.value)
    assert breaker._failures == 1
