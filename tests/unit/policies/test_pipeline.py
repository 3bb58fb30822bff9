"""The pipeline: user policies, then rate limit → breaker admission → attempts (retry delay,
per-attempt timeout) → breaker record, then the transport — in that order."""

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
    AttemptTimeout,
    CallPipeline,
    Handler,
    RateLimiter,
    RetrySchedule,
    Ticket,
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


def pipeline_of(handler: Handler) -> CallPipeline:
    """The `CallPipeline` at the end of a built chain (its bound `run`)."""
    inner = handler
    while hasattr(inner, "policy"):
        inner = inner.call_next
    pipeline = getattr(inner, "__self__", None)
    assert isinstance(pipeline, CallPipeline)
    return pipeline


def test_user_policies_wrap_the_pipeline_outermost_first() -> None:
    config = PluginConfig(name="p", rate_limit=RateLimitConfig(enabled=True))
    log: list[str] = []
    extras = [Tag(log, "a"), Tag(log, "b")]
    handler = build_pipeline(config, terminal, extra=extras, clock=FakeClock())
    assert chain(handler) == extras
    pipeline = pipeline_of(handler)
    assert isinstance(pipeline.limiter, RateLimiter)
    assert isinstance(pipeline.breaker, CircuitBreaker)
    assert isinstance(pipeline.retry, RetrySchedule)
    assert isinstance(pipeline.timeout, AttemptTimeout)
    assert pipeline.terminal is terminal


def test_parts_the_config_turns_off_are_not_built_at_all() -> None:
    config = PluginConfig(name="p", circuit_breaker=CircuitBreakerConfig(enabled=False))
    handler = build_pipeline(config, terminal)
    assert chain(handler) == []  # no user policies: the manager calls the pipeline itself
    pipeline = pipeline_of(handler)
    assert (pipeline.limiter, pipeline.breaker) == (None, None)
    assert pipeline.timeout.default == config.connection.request_timeout


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


class RecordingLimiter(RateLimiter):
    log: list[str]

    def acquire(self, call: Call) -> float:
        self.log.append("rate limit")
        return super().acquire(call)


class RecordingBreaker(CircuitBreaker):
    """Logs each admission (the pipeline reading `closed_ticket`, or calling `admit`) and record."""

    log: list[str]
    _inside = False  # reads of `closed_ticket` by the breaker's own methods are not admissions

    @property  # type: ignore[override]
    def closed_ticket(self) -> Ticket | None:
        if not self._inside and self._ticket is not None:  # else the pipeline calls `admit`
            self.log.append("admit")
        return self._ticket

    @closed_ticket.setter
    def closed_ticket(self, ticket: Ticket | None) -> None:
        self._ticket = ticket

    def admit(self, trial_timeout: float | None = None) -> Ticket:
        self.log.append("admit")
        return self._within(lambda: super(RecordingBreaker, self).admit(trial_timeout))

    def record_success(self, ticket: Ticket) -> None:
        self.log.append("record success")
        self._within(lambda: super(RecordingBreaker, self).record_success(ticket))

    def record_failure(self, ticket: Ticket, error: BaseException) -> None:
        self.log.append(f"record failure {type(error).__name__}")
        self._within(lambda: super(RecordingBreaker, self).record_failure(ticket, error))

    def _within(self, method: Any) -> Any:
        self._inside = True
        try:
            return method()
        finally:
            self._inside = False


def recording_pipeline(clock: FakeClock, log: list[str], failures: int, **retry: Any) -> CallPipeline:
    """Rate limit, breaker and retry (1 s, then 2 s) around a plugin that fails `failures` times."""
    limiter = RecordingLimiter(RateLimitConfig(requests_per_second=1, burst_size=1), clock)
    breaker = RecordingBreaker(CircuitBreakerConfig(failure_threshold=1, min_request_threshold=0), clock=clock)
    limiter.log = breaker.log = log

    async def plugin(call: Call) -> Any:
        log.append(f"attempt {call.attempt} at {clock.monotonic():g}s, timeout {call.timeout:g}s")
        if call.attempt <= failures:
            raise TransportError("down", request_sent=RequestSent.NO)  # connection refused
        return b"ok"

    schedule = RetrySchedule(RetryConfig(initial_interval=1, multiplier=2, random_jitter=False, **retry), clock)
    timeout = AttemptTimeout(10.0, clock)
    return CallPipeline(plugin, clock=clock, limiter=limiter, breaker=breaker, retry=schedule, timeout=timeout)


async def test_a_call_takes_a_token_then_is_admitted_then_makes_its_attempts_then_is_recorded_once() -> None:
    clock = FakeClock()
    log: list[str] = []
    pipeline = recording_pipeline(clock, log, failures=2, max_retries=3)
    assert await drive(clock, asyncio.ensure_future(pipeline.run(make_call()))) == b"ok"
    assert log == [
        "rate limit",
        "admit",
        "attempt 1 at 0s, timeout 10s",
        "attempt 2 at 1s, timeout 10s",  # the retry delays are slept on the pipeline's clock
        "attempt 3 at 3s, timeout 10s",
        "record success",
    ]


async def test_a_call_out_of_retries_is_one_failure_for_the_breaker() -> None:
    clock = FakeClock()
    log: list[str] = []
    pipeline = recording_pipeline(clock, log, failures=9, max_retries=1)
    with pytest.raises(TransportError) as caught:
        await drive(clock, asyncio.ensure_future(pipeline.run(make_call())))
    assert log[-1] == "record failure TransportError"
    assert [entry.split(" at")[0] for entry in log] == [
        "rate limit",
        "admit",
        "attempt 1",
        "attempt 2",
        "record failure TransportError",
    ]
    assert caught.value.details["attempts"] == 2
    assert pipeline.breaker is not None
    assert pipeline.breaker.state == "open"


async def test_a_refused_call_never_reaches_the_breaker_and_an_open_breaker_no_attempt() -> None:
    clock = FakeClock()
    log: list[str] = []
    pipeline = recording_pipeline(clock, log, failures=9, max_retries=0)
    with pytest.raises(TransportError):
        await pipeline.run(make_call())  # opens the breaker (threshold 1) and takes the only token
    log.clear()
    with pytest.raises(RateLimitedError):
        await pipeline.run(make_call())
    assert log == ["rate limit"]  # refused before admission: the open breaker was not asked
    clock.advance(1)  # a token again
    log.clear()
    with pytest.raises(CircuitOpenError):
        await pipeline.run(make_call())
    assert log == ["rate limit", "admit"]  # refused by the breaker: no attempt, nothing recorded


async def test_a_call_cancelled_while_it_waits_to_retry_is_recorded_as_cancelled_not_failed() -> None:
    clock = FakeClock()
    log: list[str] = []
    pipeline = recording_pipeline(clock, log, failures=9, max_retries=3)
    task = asyncio.ensure_future(pipeline.run(make_call()))
    await clock.wait_for_sleepers(1)  # the first retry's delay
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log[-1] == "record failure CancelledError"
    assert pipeline.breaker is not None
    assert pipeline.breaker.state == "closed"  # cancellation never counts


async def test_user_policies_see_one_call_and_its_final_result_around_every_attempt() -> None:
    clock = FakeClock()
    seen: list[tuple[int, Any]] = []

    class Outer:
        async def __call__(self, call: Call, call_next: Handler) -> Any:
            try:
                result = await call_next(call)
            except TransportError as exc:
                seen.append((call.attempt, exc.details["attempts"]))
                raise
            seen.append((call.attempt, result))
            return result

    config, breaker = breaker_and_retry(clock, max_retries=2)
    attempts: list[int] = []

    async def down(call: Call) -> Any:
        attempts.append(call.attempt)
        raise TransportError("down", request_sent=RequestSent.NO)  # connection refused

    handler = build_pipeline(config, down, extra=[Outer()], clock=clock, breaker=breaker)
    with pytest.raises(TransportError):
        await drive(clock, asyncio.ensure_future(handler(make_call())))
    assert attempts == [1, 2, 3]
    assert seen == [(1, 3)]  # once, with the first attempt's call, after the last attempt
