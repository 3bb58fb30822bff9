"""Per-attempt timeout: `ExecutionContext.timeout`, else the plugin's `request_timeout`."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from .._errors import PluginTimeoutError
from .._transports.base import Call
from .chain import Handler

__all__ = ["TimeoutPolicy"]


class TimeoutPolicy:
    """Bounds each attempt; on expiry the transport's call is cancelled (which tells the
    plugin to stop) and the caller gets `PluginTimeoutError` (1204).

    Args:
        default: Seconds an attempt may take when the call's context sets no timeout;
            0 or None means no limit.
    """

    __slots__ = ("default",)

    def __init__(self, default: float | None) -> None:
        self.default = default or None

    async def __call__(self, call: Call, call_next: Handler) -> Any:
        timeout = call.context.timeout if call.context.timeout is not None else self.default
        if timeout is None:
            return await call_next(call)
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await call_next(dataclasses.replace(call, timeout=timeout))
        except TimeoutError:
            if not scope.expired():
                raise  # a timeout reported by the plugin or transport, already coded
            raise PluginTimeoutError(
                f"no answer within {timeout:g}s", plugin=call.plugin, details={"timeout": timeout}
            ) from None
