"""A test plugin that reports the task and context each call runs in (served with plugwire.serve)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import plugwire

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="")


class TaskPlugin:
    def info(self) -> plugwire.PluginInfo:
        return plugwire.PluginInfo(name="tasks", version="1.0.0")

    async def execute(self, ctx: plugwire.ExecutionContext, request: dict[str, Any]) -> dict[str, Any]:
        before = asyncio.current_task()
        leaked = SEEN.get()
        SEEN.set(ctx.request_id)
        async with asyncio.timeout(5):  # needs a current task
            if request.get("suspend"):
                await asyncio.sleep(0)
        after = asyncio.current_task()
        return {
            "in_task": before is not None,
            "same_task": before is after,
            "leaked": leaked,
        }


if __name__ == "__main__":
    plugwire.serve(TaskPlugin())
