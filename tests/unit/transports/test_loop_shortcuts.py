"""`_seam.cheap_clock` and `cheap_future_factory`: the clock and futures a connection uses must be the loop's own,
taken the short way only where that is exactly what the loop's method returns."""

from __future__ import annotations

import asyncio
import time

import pytest

from plugwire._seam import cheap_clock as loop_clock
from plugwire._seam import cheap_future_factory as future_factory

pytestmark = pytest.mark.fast_paths_only  # the accelerator itself


async def test_on_the_standard_loop_the_clock_is_monotonic_and_futures_belong_to_it() -> None:
    loop = asyncio.get_running_loop()
    clock = loop_clock(loop)
    assert clock is time.monotonic
    before = loop.time()
    assert before <= clock() <= loop.time()
    future = future_factory(loop)()
    assert type(future) is asyncio.Future
    assert future.get_loop() is loop
    loop.call_soon(future.set_result, 7)
    assert await future == 7


class _OwnLoop(asyncio.SelectorEventLoop):
    """A loop with its own clock and futures, as uvloop or a test loop may have."""

    def time(self) -> float:
        return 1000.0 + super().time()

    def create_future(self) -> asyncio.Future[object]:
        future = super().create_future()
        future.made_here = True  # type: ignore[attr-defined]
        return future


def test_a_loop_with_its_own_clock_and_futures_keeps_them() -> None:
    loop = _OwnLoop()
    try:
        assert loop_clock(loop)() >= 1000.0
        assert loop_clock(loop) == loop.time
        assert future_factory(loop)().made_here  # type: ignore[attr-defined]
    finally:
        loop.close()


def test_uvloop_keeps_its_own_clock_and_futures() -> None:
    uvloop = pytest.importorskip("uvloop", reason="the uvloop extra is not installed")
    loop = uvloop.new_event_loop()
    try:
        assert loop_clock(loop) == loop.time
        assert future_factory(loop) == loop.create_future
    finally:
        loop.close()
