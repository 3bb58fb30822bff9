"""Retry: only retryable errors, backoff within jitter bounds, per-attempt calls, the deadline."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from msgspec.structs import replace

from plugwire import (
    ExecutionContext,
    ExecutionError,
    OutcomeUnknownError,
    PluginTimeoutError,
    RetryConfig,
    TransportError,
)
from plugwire._policies import AttemptTimeout, CallPipeline, Handler, RetrySchedule, is_retryable
from plugwire.errors import RequestSent
from plugwire.testing import Call, FakeClock


def retrying(
    config: RetryConfig, clock: FakeClock, plugin: Handler, *, timeout: float | None = None, rng: Any = random.random
) -> Handler:
    """A pipeline with only a retry schedule (and an attempt timeout when given) in front of `plugin`."""
    retry = RetrySchedule(config, clock, rng=rng)
    return CallPipeline(plugin, clock=clock, retry=retry, timeout=AttemptTimeout(timeout, clock)).run


def make_call(**context: Any) -> Call:
    return Call(plugin="p", payload=b"x", context=ExecutionContext(request_id="r", **context))


class Flaky:
    """Fails the first `failures` attempts with `error`, recording each attempt's call and time."""

    def __init__(self, clock: FakeClock, failures: int, error: Exception | None = None) -> None:
        self.clock = clock
        self.failures = failures
        self.error = error or TransportError("connection refused", request_sent=RequestSent.NO)
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
    handler = retrying(RetryConfig(max_retries=3), clock, plugin)
    assert await drive(clock, asyncio.create_task(handler(make_call()))) == b"ok"
    assert [call.attempt for call in plugin.calls] == [1, 2, 3]
    assert len({id(call) for call in plugin.calls}) == 3


async def test_gives_up_after_max_retries_with_the_last_error_and_the_attempt_count() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=100)
    handler = retrying(RetryConfig(max_retries=3), clock, plugin)
    with pytest.raises(TransportError) as caught:
        await drive(clock, asyncio.create_task(handler(make_call())))
    assert len(plugin.calls) == 4
    assert caught.value.details["attempts"] == 4


async def test_errors_not_marked_retryable_are_not_retried() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=5, error=ExecutionError("bug in plugin"))
    handler = retrying(RetryConfig(max_retries=3), clock, plugin)
    with pytest.raises(ExecutionError):
        await handler(make_call())
    assert len(plugin.calls) == 1


async def test_outcome_unknown_is_never_retried_unless_the_call_is_idempotent() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=1, error=OutcomeUnknownError("plugin died mid-call"))
    handler = retrying(RetryConfig(max_retries=3), clock, plugin)
    with pytest.raises(OutcomeUnknownError):
        await handler(make_call())
    assert len(plugin.calls) == 1

    plugin = Flaky(clock, failures=1, error=OutcomeUnknownError("plugin died mid-call"))
    handler = retrying(RetryConfig(max_retries=3), clock, plugin)
    assert await drive(clock, asyncio.create_task(handler(make_call(idempotent=True)))) == b"ok"
    assert len(plugin.calls) == 2


def test_is_retryable_follows_the_error_flag_whether_the_request_was_sent_and_idempotency() -> None:
    plain, idempotent = ExecutionContext(), ExecutionContext(idempotent=True)
    refused = TransportError("connection refused", request_sent=RequestSent.NO)
    assert is_retryable(refused, plain)
    assert not is_retryable(TransportError("x", retryable=False, request_sent=RequestSent.NO), idempotent)
    assert not is_retryable(RuntimeError("not ours"), idempotent)
    # Sent, and nothing says what came of it: only an idempotent call is repeated.
    for unknown in (OutcomeUnknownError("x"), PluginTimeoutError("x"), TransportError("cut mid-call")):
        assert unknown.request_sent is RequestSent.MAYBE
        assert not is_retryable(unknown, plain)
        assert is_retryable(unknown, idempotent)
        assert is_retryable(unknown, plain, idempotent=True)  # the plugin's `retry.idempotent`
    # Not sent: a timeout while waiting to send is repeated like any refusal.
    assert is_retryable(PluginTimeoutError("not sent in time", request_sent=RequestSent.NO), plain)
    # The plugin's own answer: its retryable flag decides.
    assert is_retryable(ExecutionError("try again", retryable=True), plain)
    assert ExecutionError("x").request_sent is RequestSent.YES


@pytest.mark.parametrize(("configured", "per_call", "attempts"), [(3, 0, 1), (0, 2, 3), (1, 4, 5)])
async def test_the_context_max_retries_overrides_the_config(configured: int, per_call: int, attempts: int) -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=100)
    handler = retrying(RetryConfig(max_retries=configured), clock, plugin)
    with pytest.raises(TransportError):
        await drive(clock, asyncio.create_task(handler(make_call(max_retries=per_call))))
    assert len(plugin.calls) == attempts


async def test_without_jitter_the_waits_grow_by_the_multiplier_up_to_the_cap() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=5)
    config = RetryConfig(max_retries=5, initial_interval=0.1, multiplier=2, max_interval=0.5, random_jitter=False)
    handler = retrying(config, clock, plugin)
    await drive(clock, asyncio.create_task(handler(make_call())))
    gaps = [b - a for a, b in zip(plugin.times, plugin.times[1:], strict=False)]
    assert gaps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


@pytest.mark.parametrize("seed", range(5))
async def test_full_jitter_waits_stay_within_zero_and_the_backoff_ceiling(seed: int) -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=6)
    config = RetryConfig(max_retries=6, initial_interval=0.1, multiplier=3, max_interval=2.0)
    handler = retrying(config, clock, plugin, rng=random.Random(seed).random)
    await drive(clock, asyncio.create_task(handler(make_call())))
    gaps = [b - a for a, b in zip(plugin.times, plugin.times[1:], strict=False)]
    ceilings = [0.1, 0.3, 0.9, 2.0, 2.0, 2.0]
    assert len(gaps) == 6
    for gap, ceiling in zip(gaps, ceilings, strict=True):
        assert 0 <= gap < ceiling + 1e-12
    assert len(set(gaps)) == 6  # random, not a fixed schedule


async def test_jitter_uses_the_whole_range_of_the_random_source() -> None:
    config = RetryConfig(initial_interval=1.0, multiplier=2, max_interval=10)
    assert RetrySchedule(config, rng=lambda: 0.0).backoff(3) == 0.0
    assert RetrySchedule(config, rng=lambda: 0.5).backoff(3) == 2.0
    assert RetrySchedule(config, rng=lambda: 0.5).backoff(100) == 5.0
    assert RetrySchedule(RetryConfig(multiplier=1e6, max_interval=7), rng=lambda: 1.0).ceiling(10_000) == 7


async def test_a_retry_whose_wait_would_reach_the_deadline_is_not_made() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=100)
    config = RetryConfig(max_retries=10, initial_interval=0.4, multiplier=2, random_jitter=False)
    handler = retrying(config, clock, plugin)
    with pytest.raises(TransportError) as caught:
        await drive(clock, asyncio.create_task(handler(make_call(total_timeout=1.0))))
    # attempts at 0 and 0.4; the next wait (0.8) would end at 1.2, past the 1.0 deadline
    assert plugin.times == pytest.approx([0.0, 0.4])
    assert clock.monotonic() == pytest.approx(0.4)
    assert caught.value.details["retry_stopped"] == "deadline"
    assert caught.value.details["attempts"] == 2


async def test_each_idempotent_attempt_gets_its_own_timeout_cut_to_the_deadline() -> None:
    clock = FakeClock()
    seen: list[Call] = []

    async def hangs_first(call: Call) -> Any:
        seen.append(call)
        if call.attempt == 1:
            await asyncio.Event().wait()
        return b"ok"

    config = RetryConfig(max_retries=2, initial_interval=0.5, random_jitter=False)
    handler = retrying(config, clock, hangs_first, timeout=2.0)
    task = asyncio.create_task(handler(make_call(total_timeout=3.0, idempotent=True)))
    assert await drive(clock, task) == b"ok"
    assert [call.attempt for call in seen] == [1, 2]
    assert seen[0].timeout == pytest.approx(2.0)
    assert seen[1].timeout == pytest.approx(0.5)  # 3.0 - 2.0 (timed out) - 0.5 (backoff)
    assert seen[0].deadline == seen[1].deadline == pytest.approx(3.0)


class Hangs:
    """A plugin that never answers, counting its attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    async def __call__(self, call: Call) -> Any:
        self.attempts += 1
        await asyncio.Event().wait()


async def test_a_timed_out_attempt_may_have_run_so_only_an_idempotent_call_is_retried() -> None:
    clock = FakeClock()
    config = RetryConfig(max_retries=1, initial_interval=0.1, random_jitter=False)
    plugin = Hangs()
    handler = retrying(config, clock, plugin, timeout=1.0)
    with pytest.raises(PluginTimeoutError) as caught:
        await drive(clock, asyncio.create_task(handler(make_call())))
    assert plugin.attempts == 1
    assert caught.value.request_sent is RequestSent.MAYBE
    assert caught.value.message == (
        "no answer within 1s (not retried: the request may have reached the plugin and the call is not idempotent)"
    )
    assert caught.value.details["retry_stopped"] == "not idempotent"

    # idempotent per call, or for the plugin (`retry.idempotent`)
    for retry_config, call in ((config, make_call(idempotent=True)), (replace(config, idempotent=True), make_call())):
        plugin = Hangs()
        handler = retrying(retry_config, clock, plugin, timeout=1.0)
        start = clock.monotonic()
        with pytest.raises(PluginTimeoutError):
            await drive(clock, asyncio.create_task(handler(call)))
        assert plugin.attempts == 2
        assert clock.monotonic() - start == pytest.approx(2.1)


async def test_the_last_timeout_names_the_attempts_and_the_time_they_took() -> None:
    clock = FakeClock()
    config = RetryConfig(max_retries=3, initial_interval=0.1, multiplier=1, random_jitter=False)
    handler = retrying(config, clock, Hangs(), timeout=1.0)
    with pytest.raises(PluginTimeoutError) as caught:
        await drive(clock, asyncio.create_task(handler(make_call(idempotent=True))))
    # four attempts of 1 s and three waits of 0.1 s
    assert str(caught.value) == "[1204] no answer within 1s (4 attempts in 4.3s) (plugin 'p')"
    assert caught.value.details["attempts"] == 4
    assert caught.value.details["elapsed"] == pytest.approx(4.3)


async def test_a_failure_that_may_have_run_after_retries_says_it_was_not_retried_again() -> None:
    clock = FakeClock()
    refused = TransportError("connection refused", request_sent=RequestSent.NO)
    cut = TransportError("connection cut mid-call", request_sent=RequestSent.MAYBE)
    errors = iter([refused, cut])

    async def plugin(call: Call) -> Any:
        raise next(errors)

    config = RetryConfig(max_retries=3, initial_interval=0.5, multiplier=1, random_jitter=False)
    handler = retrying(config, clock, plugin)
    with pytest.raises(TransportError) as caught:
        await drive(clock, asyncio.create_task(handler(make_call())))
    assert caught.value is cut
    assert caught.value.message == (
        "connection cut mid-call (2 attempts, 0.5s from the first failure to the last) (not retried again: the"
        " request may have reached the plugin and the call is not idempotent)"
    )


async def test_a_failure_not_retryable_or_out_of_retries_says_nothing_about_idempotence() -> None:
    clock = FakeClock()
    for error, max_retries in (
        (TransportError("connection cut mid-call", request_sent=RequestSent.MAYBE), 0),
        (TransportError("bad certificate", retryable=False, request_sent=RequestSent.NO), 3),
    ):

        async def plugin(call: Call, error: TransportError = error) -> Any:
            raise error

        handler = retrying(RetryConfig(max_retries=max_retries), clock, plugin)
        with pytest.raises(TransportError) as caught:
            await drive(clock, asyncio.create_task(handler(make_call())))
        assert "not retried" not in caught.value.message
        assert "retry_stopped" not in caught.value.details


async def test_an_error_that_took_unknown_time_names_the_time_from_the_first_failure() -> None:
    clock = FakeClock()
    plugin = Flaky(clock, failures=100)
    config = RetryConfig(max_retries=2, initial_interval=0.5, multiplier=1, random_jitter=False)
    handler = retrying(config, clock, plugin)
    with pytest.raises(TransportError) as caught:
        await drive(clock, asyncio.create_task(handler(make_call())))
    assert "(3 attempts, 1s from the first failure to the last)" in str(caught.value)


def test_used_alone_the_schedule_gives_each_delay_then_none_naming_the_attempts_in_the_error() -> None:
    clock = FakeClock()
    schedule = RetrySchedule(RetryConfig(max_retries=2, initial_interval=1, multiplier=3, random_jitter=False), clock)
    call = make_call()
    failure = TransportError("connection refused", request_sent=RequestSent.NO)
    started = schedule.first_started(call, failure)
    assert started == (0.0, False)  # no deadline, not a timeout: the first failure's time
    assert schedule.next_delay(failure, call, retries=0, max_retries=2, started=started) == 1
    assert schedule.next_delay(failure, call, retries=1, max_retries=2, started=started) == 3
    clock.advance(4)
    assert schedule.next_delay(failure, call, retries=2, max_retries=2, started=started) is None
    assert failure.details == {"attempts": 3, "elapsed": 4.0}
    assert "(3 attempts, 4s from the first failure to the last)" in str(failure)
    assert schedule.max_retries_for(ExecutionContext(max_retries=7)) == 7
