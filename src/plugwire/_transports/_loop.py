"""Shortcuts past two of the event loop's Python-level methods, taken on every call.

On the standard library's loops `loop.time()` only returns `time.monotonic()`, and
`loop.create_future()` only returns `asyncio.Future(loop=loop)`: each is a Python frame per
call for nothing. Where a loop overrides them (uvloop, a test loop), its own methods are used.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

__all__ = ["future_factory", "loop_clock"]


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """What `loop.time` returns, as cheaply as it can be had."""
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


def future_factory(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.Future[Any]]:
    """What `loop.create_future` returns, as cheaply as it can be had."""
    if type(loop).create_future is asyncio.BaseEventLoop.create_future:
        return functools.partial(asyncio.Future, loop=loop)
    return loop.create_future
