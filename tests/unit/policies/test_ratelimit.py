"""Rate limit: a token bucket that is exact under concurrency and runs on an injectable clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from plugwire import ExecutionContext, RateLimitConfig, RateLimitedError
from plugwire._policies import CallPipeline, Handler, RateLimiter, TokenBucket
from plugwire.errors import ErrorCode
from plugwire.testing import Call, FakeClock


def make_call(context: ExecutionContext | None = None) -> Call:
    return Call(plugin="p", payload=b"x", context=context or ExecutionContext(request_id="r"))


def limited(config: RateLimitConfig, clock: FakeClock, terminal: Handler, max_wait: float | None = None) -> Handler:
    """A pipeline with only a rate limiter in front of `terminal`."""
    return CallPipeline(terminal, clock=clock, limiter=RateLimiter(config, clock, max_wait=max_wait)).run


class Counter:
    """A terminal handler that records the fake time of every call it receives."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.times: list[float] = []

    async def __call__(self, call: Call) -> Any:
        self.times.append(self.clock.monotonic())
        return b"ok"


async def test_a_full_bucket_admits_the_burst_then_refuses_with_the_time_to_the_next_token() -> None:
    clock = FakeClock()
    terminal = Counter(clock)
    handler = CallPipeline(
        terminal, clock=clock, limiter=RateLimiter(RateLimitConfig(requests_per_second=50, burst_size=10), clock)
    ).run
    for _ in range(10):
        assert await handler(make_call()) == b"ok"
    with pytest.raises(RateLimitedError) as caught:
        await handler(make_call())
    assert caught.value.code == ErrorCode.RATE_LIMITED == 1501
    assert caught.value.details["retry_after"] == pytest.approx(0.02)
    assert caught.value.plugin == "p"
    assert len(terminal.times) == 10


async def test_tokens_come_back_at_the_configured_rate_on_the_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(50, 10, clock)
    assert [bucket.acquire() for _ in range(10)] == [0.0] * 10
    assert bucket.acquire() == pytest.approx(0.02)
    clock.advance(0.1)  # five tokens
    assert [bucket.acquire() for _ in range(5)] == [0.0] * 5
    assert bucket.acquire() > 0
    clock.advance(60)  # never more than the burst
    assert bucket.tokens == pytest.approx(10)
    assert [bucket.acquire() for _ in range(10)] == [0.0] * 10
    assert bucket.acquire() > 0


async def test_two_hundred_simultaneous_callers_get_exactly_the_burst() -> None:
    clock = FakeClock()
    terminal = Counter(clock)
    handler = CallPipeline(
        terminal, clock=clock, limiter=RateLimiter(RateLimitConfig(requests_per_second=50, burst_size=10), clock)
    ).run
    results = await asyncio.gather(*(handler(make_call()) for _ in range(200)), return_exceptions=True)
    assert sum(1 for r in results if r == b"ok") == 10
    assert sum(1 for r in results if isinstance(r, RateLimitedError)) == 190


async def test_fifty_per_second_burst_ten_four_callers_two_seconds_admit_exactly_110() -> None:
    clock = FakeClock()
    terminal = Counter(clock)
    handler = CallPipeline(
        terminal, clock=clock, limiter=RateLimiter(RateLimitConfig(requests_per_second=50, burst_size=10), clock)
    ).run

    async def caller() -> None:
        while True:
            try:
                await handler(make_call())
            except RateLimitedError as exc:
                await clock.sleep(exc.details["retry_after"])

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    try:
        while True:
            await clock.wait_for_sleepers(4)  # every caller is refused and waiting
            due = clock.next_deadline
            assert due is not None
            if due > 2.0 + 1e-9:
                break
            clock.advance_to(due)
    finally:
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
    assert len(terminal.times) == 110
    # The burst at once, then one call every 1/50 s, to the last one at exactly 2 s.
    assert terminal.times[:10] == [0.0] * 10
    for index, at in enumerate(terminal.times[10:], start=1):
        assert at == pytest.approx(index / 50, abs=1e-9)


async def test_waiting_for_a_token_admits_the_call_when_the_token_arrives() -> None:
    clock = FakeClock()
    terminal = Counter(clock)
    config = RateLimitConfig(requests_per_second=10, burst_size=1, wait=True)
    handler = CallPipeline(terminal, clock=clock, limiter=RateLimiter(config, clock)).run
    await handler(make_call())
    second = asyncio.create_task(handler(make_call(ExecutionContext(request_id="r", total_timeout=1.0))))
    await clock.wait_for_sleepers(1)
    assert clock.next_deadline == pytest.approx(0.1)
    clock.advance(0.1)
    assert await second == b"ok"
    assert terminal.times == [0.0, pytest.approx(0.1)]


async def test_a_wait_that_would_outlast_the_deadline_fails_at_once_without_sleeping() -> None:
    clock = FakeClock()
    config = RateLimitConfig(requests_per_second=1, burst_size=1, wait=True)
    handler = CallPipeline(Counter(clock), clock=clock, limiter=RateLimiter(config, clock)).run
    await handler(make_call())
    with pytest.raises(RateLimitedError) as caught:
        await handler(make_call(ExecutionContext(request_id="r", total_timeout=0.5)))
    assert caught.value.details["retry_after"] == pytest.approx(1.0)
    assert clock.sleepers == 0
    assert clock.monotonic() == 0.0


async def test_waiting_is_bounded_by_the_attempt_timeout_without_a_deadline() -> None:
    clock = FakeClock()
    config = RateLimitConfig(requests_per_second=1, burst_size=1, wait=True)
    handler = CallPipeline(Counter(clock), clock=clock, limiter=RateLimiter(config, clock, max_wait=30.0)).run
    await handler(make_call())
    with pytest.raises(RateLimitedError):
        await handler(make_call(ExecutionContext(request_id="r", timeout=0.25)))


async def test_waiters_are_served_in_arrival_order_one_interval_apart() -> None:
    clock = FakeClock()
    terminal = Counter(clock)
    config = RateLimitConfig(requests_per_second=4, burst_size=1, wait=True)
    handler = CallPipeline(terminal, clock=clock, limiter=RateLimiter(config, clock, max_wait=10.0)).run
    tasks = [asyncio.create_task(handler(make_call())) for _ in range(5)]
    await clock.wait_for_sleepers(4)
    while not all(task.done() for task in tasks):
        due = clock.next_deadline
        assert due is not None
        clock.advance_to(due)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert terminal.times == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


async def test_a_waiter_cancelled_before_its_turn_gives_its_token_back() -> None:
    clock = FakeClock()
    config = RateLimitConfig(requests_per_second=1, burst_size=1, wait=True)
    limiter = RateLimiter(config, clock, max_wait=10.0)
    handler = CallPipeline(Counter(clock), clock=clock, limiter=limiter).run
    await handler(make_call())
    waiter = asyncio.create_task(handler(make_call()))
    await clock.wait_for_sleepers(1)
    assert limiter.bucket.available_in() == pytest.approx(2.0)  # the waiter booked the next token
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert limiter.bucket.available_in() == pytest.approx(1.0)


def test_a_bucket_needs_a_positive_rate_and_burst() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(0, 1)
    with pytest.raises(ValueError, match="burst >= 1"):
        TokenBucket(1, 0)


def test_a_time_window_refills_in_steps_at_window_boundaries() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 10, clock, window=1.0)
    assert [bucket.acquire() for _ in range(10)] == [0.0] * 10
    clock.advance(0.5)
    assert bucket.acquire() == pytest.approx(0.5)  # continuous refill would have 5 tokens here
    clock.advance(0.499)
    assert bucket.acquire() == pytest.approx(0.001)
    clock.advance(0.001)
    assert [bucket.acquire() for _ in range(10)] == [0.0] * 10
    assert bucket.acquire() == pytest.approx(1.0)


def test_a_time_window_applies_through_the_limiter_config() -> None:
    limiter = RateLimiter(RateLimitConfig(enabled=True, requests_per_second=2, burst_size=2, time_window=5.0))
    assert limiter.bucket.window == 5.0


def test_used_alone_the_limiter_takes_tokens_refuses_or_books_a_wait() -> None:
    clock = FakeClock()
    refusing = RateLimiter(RateLimitConfig(requests_per_second=2, burst_size=1), clock)
    assert refusing.acquire(make_call()) == 0.0
    with pytest.raises(RateLimitedError):
        refusing.acquire(make_call())
    waiting = RateLimiter(RateLimitConfig(requests_per_second=2, burst_size=1, wait=True), clock, max_wait=0.75)
    assert waiting.acquire(make_call()) == 0.0
    assert waiting.acquire(make_call()) == pytest.approx(0.5)  # booked: the caller sleeps, then goes
    waiting.refund()  # ... or gives it back
    assert waiting.acquire(make_call()) == pytest.approx(0.5)
    with pytest.raises(RateLimitedError):
        waiting.acquire(make_call())  # the next token is 1 s away: past max_wait (0.75 s)
