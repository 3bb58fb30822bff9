"""Timeouts: per attempt, on the injected clock, cancelling the transport, within the deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from plugwire import ConnectionConfig, ExecutionContext, PluginConfig, PluginTimeoutError, RetryConfig
from plugwire._policies import AttemptTimeout, CallPipeline, build_pipeline
from plugwire.errors import ErrorCode
from plugwire.testing import Call, FakeClock


def make_call(**context: Any) -> Call:
    return Call(plugin="p", payload=b"x", context=ExecutionContext(request_id="r", **context))


class Hanging:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False
        self.calls: list[Call] = []

    async def __call__(self, call: Call) -> Any:
        self.calls.append(call)
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_an_attempt_times_out_exactly_at_its_limit_and_the_transport_call_is_cancelled() -> None:
    clock = FakeClock()
    plugin = Hanging()
    handler = CallPipeline(plugin, clock=clock, timeout=AttemptTimeout(5.0, clock)).run
    task = asyncio.create_task(handler(make_call()))
    await plugin.started.wait()
    clock.advance_to(4.999)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance_to(5.0)
    with pytest.raises(PluginTimeoutError) as caught:
        await task
    assert caught.value.code == ErrorCode.TIMEOUT == 1204
    assert caught.value.details["timeout"] == 5.0
    assert isinstance(caught.value, TimeoutError)
    assert plugin.cancelled
    assert plugin.calls[0].timeout == 5.0


async def test_the_context_timeout_wins_over_the_plugin_default() -> None:
    clock = FakeClock()
    plugin = Hanging()
    handler = CallPipeline(plugin, clock=clock, timeout=AttemptTimeout(30.0, clock)).run
    task = asyncio.create_task(handler(make_call(timeout=0.25)))
    await plugin.started.wait()
    clock.advance(0.25)
    with pytest.raises(PluginTimeoutError):
        await task
    assert plugin.calls[0].timeout == 0.25


async def test_the_overall_deadline_cuts_an_attempts_timeout() -> None:
    clock = FakeClock()
    plugin = Hanging()
    handler = CallPipeline(plugin, clock=clock, timeout=AttemptTimeout(10.0, clock)).run
    task = asyncio.create_task(handler(make_call(total_timeout=3.0)))
    await plugin.started.wait()
    assert plugin.calls[0].timeout == 3.0
    assert plugin.calls[0].deadline == 3.0
    clock.advance(3.0)
    with pytest.raises(PluginTimeoutError):
        await task


async def test_an_attempt_with_no_time_left_fails_without_reaching_the_plugin() -> None:
    clock = FakeClock(start=10.0)
    plugin = Hanging()
    handler = CallPipeline(plugin, clock=clock, timeout=AttemptTimeout(10.0, clock)).run
    late = Call(plugin="p", payload=b"x", context=ExecutionContext(request_id="r", total_timeout=1), deadline=9.5)
    with pytest.raises(PluginTimeoutError, match="deadline"):
        await handler(late)
    assert plugin.calls == []


async def test_a_timeout_raised_by_the_transport_itself_passes_through_unchanged() -> None:
    clock = FakeClock()
    reported = PluginTimeoutError("the plugin's own deadline passed", details={"remote": True})

    async def plugin(call: Call) -> Any:
        raise reported

    handler = CallPipeline(plugin, clock=clock, timeout=AttemptTimeout(5.0, clock)).run
    with pytest.raises(PluginTimeoutError) as caught:
        await handler(make_call())
    assert caught.value is reported


async def test_no_limit_when_neither_the_context_nor_the_plugin_sets_one() -> None:
    clock = FakeClock()

    async def plugin(call: Call) -> Any:
        return call.timeout

    handler = CallPipeline(plugin, clock=clock, timeout=AttemptTimeout(0, clock)).run
    assert await handler(make_call()) is None


async def test_over_a_transport_that_enforces_timeouts_the_pipeline_sets_the_limit_but_no_timer() -> None:
    seen: list[float | None] = []

    async def enforcing_transport(call: Call) -> Any:
        seen.append(call.timeout)
        for _ in range(3):  # a policy timer of 1 ns would fire during these loop turns
            await asyncio.sleep(0)
        return b"answer"

    handler = CallPipeline(enforcing_transport, timeout=AttemptTimeout(1e-9, transport_enforced=True)).run
    assert await handler(make_call()) == b"answer"
    assert seen == [1e-9]


async def test_on_a_fake_clock_the_pipeline_keeps_its_own_timer_even_over_an_enforcing_transport() -> None:
    clock = FakeClock()
    plugin = Hanging()
    config = PluginConfig(name="p", connection=ConnectionConfig(request_timeout=5.0), retry=RetryConfig(max_retries=0))
    handler = build_pipeline(config, plugin, clock=clock, transport_timeouts=True)
    task = asyncio.create_task(handler(make_call()))
    await plugin.started.wait()
    clock.advance(5.0)
    with pytest.raises(PluginTimeoutError) as caught:
        await task
    assert caught.value.details == {"timeout": 5.0, "attempt": 1}
    assert plugin.cancelled


def test_a_call_cannot_be_changed_in_place_only_copied() -> None:
    # User policies around the pipeline must never see the timeout it sets on its own copy.
    call = Call("p", b"x", ExecutionContext(request_id="r"), "json", 1.0, 3, 9.0)
    copy = msgspec.structs.replace(call, timeout=2.5)
    assert (copy.plugin, copy.codec, copy.timeout, copy.attempt, copy.deadline) == ("p", "json", 2.5, 3, 9.0)
    assert call.timeout == 1.0
    with pytest.raises(AttributeError):
        copy.timeout = 3.0  # type: ignore[misc]
