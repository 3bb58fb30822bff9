"""Circuit breaker: thresholds, fail-fast, exactly N trials, late results, classifier, listeners."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from plugwire import (
    CircuitBreakerConfig,
    CircuitOpenError,
    ExecutionContext,
    ExecutionError,
    RetryConfig,
    TransportError,
)
from plugwire._policies import AttemptTimeout, CallPipeline, RetrySchedule
from plugwire.errors import AuthenticationError, ErrorCode, RequestSent, RequestValidationError
from plugwire.policies import BreakerState, BreakerStateChange, CircuitBreaker
from plugwire.testing import Call, FakeClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make_call() -> Call:
    return Call(plugin="p", payload=b"x", context=ExecutionContext(request_id="r"))


class Plugin:
    """A scripted terminal: fails while `failing`, may hold calls until `release` is set."""

    def __init__(self) -> None:
        self.failing = False
        self.error: Exception = ExecutionError("boom")
        self.calls = 0
        self.hold = False
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def __call__(self, call: Call) -> Any:
        self.calls += 1
        self.arrived.set()
        if self.hold:
            await self.release.wait()
        if self.failing:
            raise self.error
        return b"ok"


def setup(clock: FakeClock, **settings: Any) -> tuple[CircuitBreaker, Plugin, Any]:
    config = CircuitBreakerConfig(**settings)
    breaker = CircuitBreaker(config, plugin="p", clock=clock)
    plugin = Plugin()
    # The scripted plugin stands for a transport that times its own attempts (5 s): the
    # pipeline sets no timer, so a held call can answer after a trial's time is up.
    timeout = AttemptTimeout(5.0, clock, transport_enforced=True)
    return breaker, plugin, CallPipeline(plugin, clock=clock, breaker=breaker, timeout=timeout).run


async def fail(handler: Any, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ExecutionError):
            await handler(make_call())


async def open_breaker(breaker: CircuitBreaker, plugin: Plugin, handler: Any) -> None:
    plugin.failing = True
    await fail(handler, max(breaker.config.failure_threshold, breaker.config.min_request_threshold))
    plugin.failing = False
    assert breaker.state is OPEN


async def test_opens_at_exactly_the_failure_threshold_not_one_before() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(clock, failure_threshold=5, min_request_threshold=3)
    plugin.failing = True
    await fail(handler, 4)
    assert breaker.state is CLOSED
    await fail(handler, 1)
    assert breaker.state is OPEN
    assert breaker.trips == 1


async def test_needs_the_minimum_number_of_calls_before_opening() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(clock, failure_threshold=2, min_request_threshold=10)
    for _ in range(7):
        await handler(make_call())
    plugin.failing = True
    await fail(handler, 2)  # 9 calls seen, 2 consecutive failures: one call short
    assert breaker.state is CLOSED
    await fail(handler, 1)  # the 10th call
    assert breaker.state is OPEN


async def test_a_success_while_closed_resets_the_consecutive_failures() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(clock, failure_threshold=3, min_request_threshold=0)
    for _ in range(5):
        plugin.failing = True
        await fail(handler, 2)
        plugin.failing = False
        await handler(make_call())
    assert breaker.state is CLOSED
    plugin.failing = True
    await fail(handler, 3)
    assert breaker.state is OPEN


async def test_an_open_circuit_fails_fast_with_the_time_left_and_never_reaches_the_plugin() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(clock, failure_threshold=1, min_request_threshold=0, recovery_timeout=30)
    await open_breaker(breaker, plugin, handler)
    calls = plugin.calls
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as caught:
        await handler(make_call())
    assert caught.value.code == ErrorCode.CIRCUIT_OPEN == 1401
    assert caught.value.details["retry_after"] == pytest.approx(20)
    assert caught.value.plugin == "p"
    assert plugin.calls == calls


async def test_half_open_starts_exactly_at_the_recovery_timeout_not_a_millisecond_before() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(
        clock, failure_threshold=1, min_request_threshold=0, recovery_timeout=30, success_threshold=1
    )
    await open_breaker(breaker, plugin, handler)
    clock.advance_to(29.999)
    with pytest.raises(CircuitOpenError):
        await handler(make_call())
    assert breaker.state is OPEN
    clock.advance_to(30.0)
    assert breaker.state is HALF_OPEN
    assert await handler(make_call()) == b"ok"
    assert breaker.state is CLOSED


@pytest.mark.parametrize("success_threshold", [1, 2, 5])
async def test_two_hundred_callers_at_half_open_let_exactly_success_threshold_through(success_threshold: int) -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(
        clock, failure_threshold=1, min_request_threshold=0, recovery_timeout=1, success_threshold=success_threshold
    )
    for _round in range(3):  # every run, not just the first
        await open_breaker(breaker, plugin, handler)
        clock.advance(1)
        plugin.calls = 0
        plugin.hold = True
        plugin.release = asyncio.Event()
        tasks = [asyncio.create_task(handler(make_call())) for _ in range(200)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert plugin.calls == success_threshold
        refused = [task for task in tasks if task.done()]
        assert len(refused) == 200 - success_threshold
        assert all(isinstance(task.exception(), CircuitOpenError) for task in refused)
        plugin.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results.count(b"ok") == success_threshold
        assert plugin.calls == success_threshold
        assert breaker.state is CLOSED
        plugin.hold = False


async def test_any_failed_trial_reopens_and_the_other_trials_late_success_is_ignored() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(
        clock, failure_threshold=1, min_request_threshold=0, recovery_timeout=1, success_threshold=2
    )
    await open_breaker(breaker, plugin, handler)
    clock.advance(1)
    plugin.hold = True
    plugin.arrived = asyncio.Event()
    slow = asyncio.create_task(handler(make_call()))
    await plugin.arrived.wait()
    plugin.hold = False
    plugin.failing = True
    with pytest.raises(ExecutionError):
        await handler(make_call())
    assert breaker.state is OPEN
    plugin.failing = False
    plugin.release.set()
    assert await slow == b"ok"  # its caller still gets the answer ...
    assert breaker.state is OPEN  # ... but it changes nothing
    assert breaker.transitions[(HALF_OPEN, OPEN)] == 1
    assert breaker.transitions[(HALF_OPEN, CLOSED)] == 0


async def test_a_trial_that_outlives_its_timeout_counts_as_failed_even_if_it_answers_later() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(
        clock, failure_threshold=1, min_request_threshold=0, recovery_timeout=10, success_threshold=1
    )
    await open_breaker(breaker, plugin, handler)
    clock.advance(10)
    plugin.hold = True
    plugin.arrived = asyncio.Event()
    trial = asyncio.create_task(handler(make_call()))
    await plugin.arrived.wait()
    clock.advance_to(14.999)
    assert breaker.state is HALF_OPEN
    clock.advance_to(15.0)  # the trial's 5 s attempt timeout
    assert breaker.state is OPEN
    plugin.release.set()
    assert await trial == b"ok"
    assert breaker.state is OPEN
    assert breaker.transitions[(HALF_OPEN, OPEN)] == 1
    with pytest.raises(CircuitOpenError) as caught:
        await handler(make_call())
    assert caught.value.details["retry_after"] == pytest.approx(10)


async def test_late_failures_from_before_a_trip_cause_no_second_transition() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(clock, failure_threshold=2, min_request_threshold=0, recovery_timeout=10)
    plugin.hold = True
    plugin.failing = True
    slow = [asyncio.create_task(handler(make_call())) for _ in range(3)]
    await asyncio.sleep(0)
    plugin.hold = False
    await fail(handler, 2)
    assert breaker.state is OPEN
    clock.advance(6)
    plugin.release.set()
    for task in slow:
        with pytest.raises(ExecutionError):
            await task
    assert breaker.transitions == {(CLOSED, OPEN): 1}
    with pytest.raises(CircuitOpenError) as caught:
        await handler(make_call())
    assert caught.value.details["retry_after"] == pytest.approx(4)  # the open timer was not restarted


@pytest.mark.parametrize(
    "error", [RequestValidationError("bad"), AuthenticationError("who?")], ids=["bad-request", "auth"]
)
async def test_caller_errors_do_not_trip_the_breaker(error: Exception) -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(clock, failure_threshold=1, min_request_threshold=0)
    plugin.failing = True
    plugin.error = error
    for _ in range(10):
        with pytest.raises(type(error)):
            await handler(make_call())
    assert breaker.state is CLOSED


async def test_cancelled_calls_do_not_trip_the_breaker_and_free_their_trial_slot() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(
        clock, failure_threshold=1, min_request_threshold=0, recovery_timeout=1, success_threshold=1
    )
    plugin.hold = True
    tasks = [asyncio.create_task(handler(make_call())) for _ in range(5)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert breaker.state is CLOSED
    plugin.hold = False
    await open_breaker(breaker, plugin, handler)
    clock.advance(1)
    plugin.hold = True
    plugin.release = asyncio.Event()
    trial = asyncio.create_task(handler(make_call()))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await handler(make_call())  # the single slot is taken
    trial.cancel()
    await asyncio.gather(trial, return_exceptions=True)
    assert breaker.state is HALF_OPEN
    plugin.hold = False
    assert await handler(make_call()) == b"ok"  # the slot was given back
    assert breaker.state is CLOSED


async def test_a_replaced_classifier_decides_what_counts() -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(clock, failure_threshold=1, min_request_threshold=0)
    breaker.classifier = lambda error: isinstance(error, TransportError)
    plugin.failing = True
    await fail(handler, 3)
    assert breaker.state is CLOSED
    plugin.error = TransportError("down")
    with pytest.raises(TransportError):
        await handler(make_call())
    assert breaker.state is OPEN


async def test_listeners_see_every_change_and_a_raising_listener_is_removed(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(
        clock, failure_threshold=1, min_request_threshold=0, recovery_timeout=1, success_threshold=1
    )
    seen: list[BreakerStateChange] = []

    def broken(change: BreakerStateChange) -> None:
        raise RuntimeError("listener bug")

    breaker.listeners.extend([seen.append, broken])
    with caplog.at_level(logging.INFO, logger="plugwire.breaker"):
        await open_breaker(breaker, plugin, handler)
        clock.advance(1)
        assert await handler(make_call()) == b"ok"
    assert [(c.old, c.new) for c in seen] == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert seen[1].at == 1.0
    assert seen[0].plugin == "p"
    assert broken not in breaker.listeners
    messages = [r.getMessage() for r in caplog.records if r.name == "plugwire.breaker"]
    assert any("closed -> open" in m for m in messages)
    assert any("half-open -> closed" in m for m in messages)
    assert breaker.transitions == {(CLOSED, OPEN): 1, (OPEN, HALF_OPEN): 1, (HALF_OPEN, CLOSED): 1}


async def test_a_trial_makes_one_attempt_even_when_retries_are_configured() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(failure_threshold=1, min_request_threshold=0, recovery_timeout=1)
    breaker = CircuitBreaker(config, plugin="p", clock=clock)
    plugin = Plugin()
    retry = RetrySchedule(RetryConfig(max_retries=3, initial_interval=0, random_jitter=False), clock)
    handler = CallPipeline(plugin, clock=clock, breaker=breaker, retry=retry).run
    plugin.failing = True
    plugin.error = TransportError("down", request_sent=RequestSent.NO)
    with pytest.raises(TransportError):
        await handler(make_call())
    assert plugin.calls == 4  # closed: the retries ran, and the whole call counted once
    assert breaker.state is OPEN
    clock.advance(1)
    with pytest.raises(TransportError):
        await handler(make_call())
    assert plugin.calls == 5
    assert breaker.state is OPEN


async def test_a_classifier_that_raises_counts_a_failure_and_the_callers_error_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker, plugin, handler = setup(clock, failure_threshold=1, min_request_threshold=0)

    def broken(error: Exception) -> bool:
        raise RuntimeError("classifier bug")

    breaker.classifier = broken
    plugin.failing = True
    with caplog.at_level(logging.ERROR, logger="plugwire.breaker"):
        await fail(handler, 1)
    assert breaker.state is OPEN
    assert "classifier" in caplog.text


# ------------------------------------------------------------ one event, one failure
def lost_call(event: BaseException, *, via: BaseException | None = None) -> ExecutionError:
    """The error of a call lost to `event` (optionally through an intermediate error)."""
    error = ExecutionError("the plugin failed after receiving the request")
    middle = via if via is not None else event
    if via is not None:
        via.__cause__ = event
    error.__cause__ = middle
    return error


def test_failures_with_one_root_cause_count_as_one_failure() -> None:
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=2, min_request_threshold=0), clock=FakeClock())
    crash = TransportError("the plugin closed its end of the connection")
    for _ in range(16):  # 16 calls lost to one process exit
        breaker.record(breaker.admit(), lost_call(crash))
    assert breaker.state is CLOSED
    # Another process of the same incident: its own reason, caused by the incident's first.
    for _ in range(8):
        breaker.record(breaker.admit(), lost_call(crash, via=TransportError("connection lost")))
    assert breaker.state is CLOSED
    breaker.record(breaker.admit(), lost_call(TransportError("a second crash")))
    assert breaker.state is OPEN


def test_failures_without_a_cause_still_count_one_by_one() -> None:
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=3, min_request_threshold=0), clock=FakeClock())
    for _ in range(3):
        breaker.record(breaker.admit(), ExecutionError("boom"))
    assert breaker.state is OPEN


def test_recovered_turns_an_open_breaker_half_open_at_once_and_leaves_the_others_alone() -> None:
    clock = FakeClock()
    changes: list[BreakerStateChange] = []
    breaker = CircuitBreaker(
        CircuitBreakerConfig(failure_threshold=1, min_request_threshold=0, recovery_timeout=300),
        clock=clock,
        listeners=[changes.append],
    )
    breaker.recovered()
    assert breaker.state is CLOSED
    breaker.record(breaker.admit(), ExecutionError("boom"))
    assert breaker.state is OPEN
    breaker.recovered("process 7 replaced a crashed one")
    assert breaker.state is HALF_OPEN  # no time passed on the clock
    assert changes[-1].reason == "process 7 replaced a crashed one"
    ticket = breaker.admit()
    breaker.recovered()  # half-open: trials in flight keep their slots
    assert breaker.state is HALF_OPEN
    breaker.record(ticket, None)
    breaker.record(breaker.admit(), None)
    assert breaker.state is CLOSED


def test_used_alone_admit_and_record_drive_the_state_machine_on_its_clock() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        CircuitBreakerConfig(failure_threshold=2, min_request_threshold=0, recovery_timeout=5, success_threshold=1),
        plugin="p",
        clock=clock,
    )
    ticket = breaker.admit()
    assert breaker.admit() is ticket is breaker.closed_ticket  # while closed: one ticket, nothing allocated
    breaker.record_failure(ticket, TransportError("down"))
    breaker.record_success(breaker.admit())  # resets the consecutive failures
    for _ in range(2):
        breaker.record_failure(breaker.admit(), TransportError("down"))
    assert breaker.state is OPEN
    assert breaker.closed_ticket is None  # the pipeline asks admit()
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    late = ticket  # admitted before the trip: its result no longer counts
    breaker.record_success(late)
    assert breaker.state is OPEN
    clock.advance(5)
    trial = breaker.admit(trial_timeout=1.0)
    assert trial[1] is not None
    with pytest.raises(CircuitOpenError):
        breaker.admit()  # the single trial slot is taken
    breaker.record_failure(trial, asyncio.CancelledError())  # not a verdict: the slot is free again
    trial = breaker.admit(trial_timeout=1.0)
    breaker.record_success(trial)
    assert breaker.state is CLOSED
    assert breaker.admit() is breaker.closed_ticket is not ticket  # a new closed period, a new ticket
