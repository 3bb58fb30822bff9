"""asyncio alone, no I/O: calls that each await a future, answered together.

What callers waiting for answers cost asyncio itself (a future, its callback scheduled
through the loop, a task step), with nothing else on the path: the floor under
`subprocess.x64.gather` and the `wakeups.x64` workload of `benchmarks/instructions.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["answered_together"]


def answered_together(in_flight: int) -> Callable[[], Coroutine[Any, Any, None]]:
    """A call that awaits a future of its own; once `in_flight` calls wait, all of them are
    answered in the next loop turn. Make it inside the running loop."""
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[None]] = []

    def resolve() -> None:
        batch, waiting[:] = list(waiting), []
        for future in batch:
            future.set_result(None)

    async def call() -> None:
        future = loop.create_future()
        waiting.append(future)
        if len(waiting) == in_flight:
            loop.call_soon(resolve)
        await future

    return call
