"""FakeClock: time moves only when the test moves it."""

from __future__ import annotations

import asyncio

import pytest

from plugwire.testing import FakeClock


async def test_sleep_ends_only_when_time_reaches_its_deadline() -> None:
    clock = FakeClock(start=100.0)
    task = asyncio.create_task(clock.sleep(5))
    await clock.wait_for_sleepers(1)
    clock.advance(4.999)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.001)
    await task
    assert clock.monotonic() == pytest.approx(105.0)


async def test_advance_to_sets_the_exact_time_and_never_goes_back() -> None:
    clock = FakeClock()
    clock.advance_to(2.5)
    assert clock.monotonic() == 2.5
    clock.advance_to(1.0)
    assert clock.monotonic() == 2.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


async def test_next_deadline_and_sleepers_ignore_cancelled_sleeps() -> None:
    clock = FakeClock()
    first = asyncio.create_task(clock.sleep(3))
    second = asyncio.create_task(clock.sleep(1))
    await clock.wait_for_sleepers(2)
    assert clock.next_deadline == 1
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert clock.sleepers == 1
    assert clock.next_deadline == 3
    clock.advance_to(3)
    await first


async def test_timeout_scope_expires_on_fake_time_not_before() -> None:
    clock = FakeClock()
    started = asyncio.Event()

    async def body() -> None:
        async with clock.timeout(2.0) as scope:
            started.set()
            await asyncio.Event().wait()
        raise AssertionError(f"unreachable {scope}")

    task = asyncio.create_task(body())
    await started.wait()
    clock.advance(1.999)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.001)
    with pytest.raises(TimeoutError):
        await task
    assert clock.next_deadline is None


async def test_timeout_scope_that_finishes_in_time_does_not_fire_later() -> None:
    clock = FakeClock()
    scope = clock.timeout(1.0)
    async with scope:
        await asyncio.sleep(0)
    clock.advance(5)
    await asyncio.sleep(0)
    assert not scope.expired()


async def test_timeout_with_no_time_left_expires_at_once() -> None:
    clock = FakeClock()
    with pytest.raises(TimeoutError):
        async with clock.timeout(0):
            await asyncio.Event().wait()


async def test_zero_sleep_only_yields() -> None:
    clock = FakeClock()
    await clock.sleep(0)
    assert clock.monotonic() == 0.0
    assert clock.sleepers == 0
