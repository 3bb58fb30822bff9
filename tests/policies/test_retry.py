"""Retry: only retryable errors, backoff within jitter bounds, per-attempt calls, the deadline."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from plugwire import (
    ExecutionContext,
    ExecutionError,
    OutcomeUnknownError,
    PluginTimeoutError,
    RetryConfig,
    TransportError,
)
from plugwire._policies import RetryPolicy, TimeoutPolicy, compose, is_retryable
from plugwire.testing import Call, FakeClock


def make_call(**context: Any) -> Call:
    return Call(plugin="p", payload=b"x", context=ExecutionContext(request_id="r", **context))


class Flaky:
    """Fails the first `failures` attempts with `error`, recording each attempt's call and time."""

    def __init__(self, clock: FakeClock, failures: int, error: Exception | None = None) -> None:
        self.clock = clock
        self.failures = failures
        self.error = error or TransportError("connection refused")
        self.calls: list[Call] = []
        self.times: list[float] = []

    async def __call__(self, call: Call) -> Any:
        self.calls.append(call)
        self.times.append(self.clock.monotonic())
        if len(self.calls) <= self.failures:
            raise self.error
        return b"ok"


async def drive(clock: FakeClock, task: asyncio.Task[Any]) -> Any:
    """Move the fake clock from one sleeper's deadline to the next until `task` ends."""
    while not task.done():
        due = clock.next_deadline
        if due is None:
            await asyncio.sleep(0)
            continue
        clock.advance_to(due)
        await asyncio.sleep(0)
    return await task


async def test_retries_a_retryable_error_until_it_succeeds_each_attempt_a_new_call() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=2)
    handler = compose([RetryPolicy(RetryConfig(max_retries=3), clock)], plugin)
    assert await drive(clock, asyncio.create_task(handler(make_call()))) == b"ok"
    assert [call.attempt for call in plugin.calls] == [1, 2, 3]
    assert len({id(call) for call in plugin.calls}) == 3


async def test_gives_up_after_max_retries_with_the_last_error_and_the_attempt_count() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=100)
    handler = compose([RetryPolicy(RetryConfig(max_retries=3), clock)], plugin)
    with pytest.raises(TransportError) as caught:
        await drive(clock, asyncio.create_task(handler(make_call())))
    assert len(plugin.calls) == 4
    assert caught.value.details["attempts"] == 4


async def test_errors_not_marked_retryable_are_not_retried() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=5, error=ExecutionError("bug in plugin"))
    handler = compose([RetryPolicy(RetryConfig(max_retries=3), clock)], plugin)
    with pytest.raises(ExecutionError):
        await handler(make_call())
    assert len(plugin.calls) == 1


async def test_outcome_unknown_is_never_retried_unless_the_call_is_idempotent() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=1, error=OutcomeUnknownError("plugin died mid-call"))
    handler = compose([RetryPolicy(RetryConfig(max_retries=3), clock)], plugin)
    with pytest.raises(OutcomeUnknownError):
        await handler(make_call())
    assert len(plugin.calls) == 1

    plugin = Flaky(clock, failures=1, error=OutcomeUnknownError("plugin died mid-call"))
    handler = compose([RetryPolicy(RetryConfig(max_retries=3), clock)], plugin)
    assert await drive(clock, asyncio.create_task(handler(make_call(idempotent=True)))) == b"ok"
    assert len(plugin.calls) == 2


def test_is_retryable_follows_the_error_flag_and_idempotency() -> None:
    plain = ExecutionContext()
    assert is_retryable(TransportError("x"), plain)
    assert not is_retryable(TransportError("x", retryable=False), plain)
    assert not is_retryable(RuntimeError("not ours"), plain)
    assert not is_retryable(OutcomeUnknownError("x"), plain)
    assert is_retryable(OutcomeUnknownError("x"), ExecutionContext(idempotent=True))


@pytest.mark.parametrize(("configured", "per_call", "attempts"), [(3, 0, 1), (0, 2, 3), (1, 4, 5)])
async def test_the_context_max_retries_overrides_the_config(configured: int, per_call: int, attempts: int) -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=100)
    handler = compose([RetryPolicy(RetryConfig(max_retries=configured), clock)], plugin)
    with pytest.raises(TransportError):
        await drive(clock, asyncio.create_task(handler(make_call(max_retries=per_call))))
    assert len(plugin.calls) == attempts


async def test_without_jitter_the_waits_grow_by_the_multiplier_up_to_the_cap() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=5)
    config = RetryConfig(max_retries=5, initial_interval=0.1, multiplier=2, max_interval=0.5, random_jitter=False)
    handler = compose([RetryPolicy(config, clock)], plugin)
    await drive(clock, asyncio.create_task(handler(make_call())))
    gaps = [b - a for a, b in zip(plugin.times, plugin.times[1:], strict=False)]
    assert gaps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


@pytest.mark.parametrize("seed", range(5))
async def test_full_jitter_waits_stay_within_zero_and_the_backoff_ceiling(seed: int) -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=6)
    config = RetryConfig(max_retries=6, initial_interval=0.1, multiplier=3, max_interval=2.0)
    policy = RetryPolicy(config, clock, rng=random.Random(seed).random)
    handler = compose([policy], plugin)
    await drive(clock, asyncio.create_task(handler(make_call())))
    gaps = [b - a for a, b in zip(plugin.times, plugin.times[1:], strict=False)]
    ceilings = [0.1, 0.3, 0.9, 2.0, 2.0, 2.0]
    assert len(gaps) == 6
    for gap, ceiling in zip(gaps, ceilings, strict=True):
        assert 0 <= gap < ceiling + 1e-12
    assert len(set(gaps)) == 6  # random, not a fixed schedule


async def test_jitter_uses_the_whole_range_of_the_random_source() -> None:
    config = RetryConfig(initial_interval=1.0, multiplier=2, max_interval=10)
    assert RetryPolicy(config, rng=lambda: 0.0).backoff(3) == 0.0
    assert RetryPolicy(config, rng=lambda: 0.5).backoff(3) == 2.0
    assert RetryPolicy(config, rng=lambda: 0.5).backoff(100) == 5.0
    assert RetryPolicy(RetryConfig(multiplier=1e6, max_interval=7), rng=lambda: 1.0).ceiling(10_000) == 7


async def test_a_retry_whose_wait_would_reach_the_deadline_is_not_made() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=100)
    config = RetryConfig(max_retries=10, initial_interval=0.4, multiplier=2, random_jitter=False)
    handler = compose([RetryPolicy(config, clock)], plugin)
    with pytest.raises(TransportError) as caught:
        await drive(clock, asyncio.create_task(handler(make_call(total_timeout=1.0))))
    # attempts at 0 and 0.4; the next wait (0.8) would end at 1.2, past the 1.0 deadline
    assert plugin.times == pytest.approx([0.0, 0.4])
    assert clock.monotonic() == pytest.approx(0.4)
    assert caught.value.details["retry_stopped"] == "deadline"
    assert caught.value.details["attempts"] == 2


async def test_each_attempt_gets_its_own_timeout_cut_to_the_deadline() -> None:
    clock = FakeClock()
    seen: list[Call] = []

    async def hangs_first(call: Call) -> Any:
        seen.append(call)
        if call.attempt == 1:
            await asyncio.Event().wait()
        return b"ok"

    config = RetryConfig(max_retries=2, initial_interval=0.5, random_jitter=False)
    handler = compose([RetryPolicy(config, clock), TimeoutPolicy(2.0, clock)], hangs_first)
    task = asyncio.create_task(handler(make_call(total_timeout=3.0)))
    assert await drive(clock, task) == b"ok"
    assert [call.attempt for call in seen] == [1, 2]
    assert seen[0].timeout == pytest.approx(2.0)
    assert seen[1].timeout == pytest.approx(0.5)  # 3.0 - 2.0 (timed out) - 0.5 (backoff)
    assert seen[0].deadline == seen[1].deadline == pytest.approx(3.0)


async def test_timeouts_are_retried_like_other_retryable_errors() -> None:
    clock = FakeClock()
    attempts = 0

    async def always_hangs(call: Call) -> Any:
        nonlocal attempts
        attempts += 1
        await asyncio.Event().wait()

    config = RetryConfig(max_retries=1, initial_interval=0.1, random_jitter=False)
    handler = compose([RetryPolicy(config, clock), TimeoutPolicy(1.0, clock)], always_hangs)
    with pytest.raises(PluginTimeoutError):
        await drive(clock, asyncio.create_task(handler(make_call())))
    assert attempts == 2
    assert clock.monotonic() == pytest.approx(2.1)
