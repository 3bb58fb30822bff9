"""The manager and builders wire the policies and monitors per plugin, on the clock they are given."""

from __future__ import annotations

import asyncio

import pytest

import plugwire
from plugwire import (
    AsyncPluginManager,
    CircuitBreakerConfig,
    CircuitOpenError,
    ConfigError,
    ExecutionContext,
    ExecutionError,
    HealthCheckConfig,
    Plugin,
    PluginConfig,
    PluginInfo,
    PluginManager,
    PluginNotFoundError,
    PluginTimeoutError,
    RateLimitConfig,
    RateLimitedError,
    RetryConfig,
)
from plugwire._policies import Handler
from plugwire.policies import BreakerState, BreakerStateChange, Call
from plugwire.testing import FakeClock


class Echo(Plugin[str, str]):
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.hang = False
        self.started = asyncio.Event()

    def info(self) -> PluginInfo:
        return PluginInfo(name="echo")

    async def execute(self, ctx: ExecutionContext, request: str) -> str:
        self.calls += 1
        self.started.set()
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise RuntimeError("plugin bug")
        return request


def tight_breaker(name: str = "echo") -> PluginConfig:
    return PluginConfig(
        name=name,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, min_request_threshold=0, recovery_timeout=5),
    )


async def test_failures_through_the_manager_open_the_plugins_breaker_and_listeners_hear_it() -> None:
    clock = FakeClock()
    changes: list[BreakerStateChange] = []
    plugin = Echo()
    async with AsyncPluginManager(str, str, clock=clock, breaker_listeners=[changes.append]) as manager:
        await manager.register(plugin, config=tight_breaker())
        plugin.fail = True
        for _ in range(2):
            with pytest.raises(ExecutionError):
                await manager.execute("echo", "x")
        with pytest.raises(CircuitOpenError):
            await manager.execute("echo", "x")
        assert plugin.calls == 2
        breaker = manager.circuit_breaker("echo")
        assert breaker is not None
        assert breaker.state is BreakerState.OPEN
        assert [(c.plugin, c.new) for c in changes] == [("echo", BreakerState.OPEN)]
        plugin.fail = False
        clock.advance(5)
        assert await manager.execute("echo", "x") == "x"
        assert await manager.execute("echo", "y") == "y"
        assert breaker.state is BreakerState.CLOSED


async def test_circuit_breaker_lookup_is_none_when_disabled_and_fails_for_unknown_plugins() -> None:
    async with AsyncPluginManager(str, str) as manager:
        await manager.register(
            Echo(), config=PluginConfig(name="echo", circuit_breaker=CircuitBreakerConfig(enabled=False))
        )
        assert manager.circuit_breaker("echo") is None
        with pytest.raises(PluginNotFoundError):
            manager.circuit_breaker("nope")


async def test_the_total_timeout_bounds_the_whole_call_on_the_managers_clock() -> None:
    clock = FakeClock()
    plugin = Echo()
    plugin.hang = True
    async with AsyncPluginManager(str, str, clock=clock) as manager:
        await manager.register(plugin)
        call = asyncio.create_task(manager.execute("echo", "x", ExecutionContext(timeout=10, total_timeout=2)))
        await plugin.started.wait()
        clock.advance(1.999)
        await asyncio.sleep(0)
        assert not call.done()
        clock.advance(0.001)
        with pytest.raises(PluginTimeoutError) as caught:
            await call
        assert caught.value.plugin == "echo"
        assert caught.value.details["timeout"] == 2


async def test_a_configured_rate_limit_refuses_calls_over_it() -> None:
    clock = FakeClock()
    config = PluginConfig(name="echo", rate_limit=RateLimitConfig(enabled=True, requests_per_second=2, burst_size=2))
    async with AsyncPluginManager(str, str, clock=clock) as manager:
        await manager.register(Echo(), config=config)
        await manager.execute("echo", "a")
        await manager.execute("echo", "b")
        with pytest.raises(RateLimitedError) as caught:
            await manager.execute("echo", "c")
        assert caught.value.plugin == "echo"
        clock.advance(0.5)
        assert await manager.execute("echo", "d") == "d"


async def test_builder_resilience_settings_reach_every_plugin_it_makes() -> None:
    clock = FakeClock()
    first, second = Echo(), Echo()
    manager = (
        plugwire.simple(str, str, clock=clock)
        .with_plugin("one", first)
        .with_plugin("two", second)
        .with_circuit_breaker(failure_threshold=1, min_request_threshold=0)
        .with_retry(RetryConfig(max_retries=0))
        .with_rate_limit(requests_per_second=1, burst_size=2)
        .with_health_check(interval=7, failure_limit=1)
        .build()
    )
    assert manager.clock is clock
    async with manager:
        for name, plugin in (("one", first), ("two", second)):
            plugin.fail = True
            with pytest.raises(ExecutionError):
                await manager.execute(name, "x")
            assert plugin.calls == 1  # no retries
            with pytest.raises(CircuitOpenError):  # opened after one failure
                await manager.execute(name, "x")
            with pytest.raises(RateLimitedError):  # both tokens were spent above
                await manager.execute(name, "x")
        await clock.wait_for_sleepers(2)
        assert clock.next_deadline == 7


async def test_a_plugin_config_given_to_the_builder_is_used_as_given() -> None:
    own = PluginConfig(name="mine", retry=RetryConfig(max_retries=2))
    manager = plugwire.simple(str, str).with_plugin("mine", Echo(), own).with_retry(max_retries=9).build()
    async with manager:
        assert manager.circuit_breaker("mine") is not None
        assert manager._entries["mine"].config.retry.max_retries == 2


def test_builder_settings_are_validated_like_config_files() -> None:
    with pytest.raises(ConfigError, match="with_retry"):
        plugwire.simple(str, str).with_retry(max_retries=-1)
    with pytest.raises(ConfigError, match="with_rate_limit"):
        plugwire.simple(str, str).with_rate_limit(requests_per_second=0)
    with pytest.raises(ConfigError, match="with_health_check"):
        plugwire.simple(str, str).with_health_check(no_such_field=1)


def test_with_health_check_keeps_the_profile_interval_unless_given() -> None:
    builder = plugwire.production(str, str).with_health_check(failure_limit=5)
    section = builder._sections["health_check"]
    assert section == HealthCheckConfig(interval=15.0, failure_limit=5)


def test_the_blocking_twin_takes_breaker_listeners() -> None:
    changes: list[BreakerStateChange] = []
    plugin = Echo()
    plugin.fail = True
    with PluginManager(str, str, breaker_listeners=[changes.append]) as manager:
        manager.register(plugin, config=tight_breaker())
        for _ in range(2):
            with pytest.raises(ExecutionError):
                manager.execute("echo", "x")
        with pytest.raises(CircuitOpenError):
            manager.execute("echo", "x")
    assert [c.new for c in changes] == [BreakerState.OPEN]


async def test_with_wait_a_call_over_the_limit_waits_for_its_token_on_the_managers_clock() -> None:
    clock = FakeClock()
    config = PluginConfig(
        name="echo", rate_limit=RateLimitConfig(enabled=True, requests_per_second=1, burst_size=1, wait=True)
    )
    async with AsyncPluginManager(str, str, clock=clock) as manager:
        await manager.register(Echo(), config=config)
        await manager.execute("echo", "first")
        second = asyncio.create_task(manager.execute("echo", "second"))
        await clock.wait_for_sleepers(2)  # the waiting call and the health monitor
        assert not second.done()
        clock.advance(1)
        assert await second == "second"


async def test_a_user_policy_wraps_one_call_whose_retries_wait_on_the_managers_clock_and_count_once() -> None:
    clock = FakeClock()
    seen: list[tuple[str, object]] = []

    class Outer:
        async def __call__(self, call: Call, call_next: Handler) -> object:
            seen.append(("before", call.attempt))
            result = await call_next(call)
            seen.append(("after", result))
            return result

    class Busy(Echo):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        async def execute(self, ctx: ExecutionContext, request: str) -> str:
            self.times.append(clock.monotonic())
            if len(self.times) <= 2:
                raise ExecutionError("busy, try again", retryable=True)
            return request

    config = PluginConfig(
        name="echo",
        retry=RetryConfig(max_retries=3, initial_interval=1, multiplier=2, random_jitter=False),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1, min_request_threshold=0),
        health_check=HealthCheckConfig(enabled=False),  # nothing else sleeps on the clock
    )
    plugin = Busy()
    async with AsyncPluginManager(str, str, clock=clock, policies=[Outer()]) as manager:
        await manager.register(plugin, config=config)
        call = asyncio.create_task(manager.execute("echo", "x"))
        for delay in (1, 2):
            await clock.wait_for_sleepers(1)
            clock.advance(delay)
        assert await call == "x"
        assert plugin.times == [0, 1, 3]
        assert seen == [("before", 1), ("after", b"\xa1x")]  # one call, its encoded answer
        breaker = manager.circuit_breaker("echo")
        assert breaker is not None
        assert breaker.state is BreakerState.CLOSED  # two failed attempts, one successful call
