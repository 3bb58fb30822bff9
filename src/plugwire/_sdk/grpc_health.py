"""The standard `grpc.health.v1.Health` service of a gRPC plugin, following the plugin's `health()`.

A Kubernetes gRPC probe (or `grpc_health_probe`) asks `Check`; the answer is the plugin's own
health at that moment: `SERVING` while `health()` reports healthy or degraded, `NOT_SERVING`
when it reports unhealthy or offline, raises, or takes longer than the probe's deadline (at
most `CHECK_TIMEOUT`). From the moment the server starts stopping the answer is `NOT_SERVING`,
so a probe takes the plugin out of rotation while its in-flight calls finish.
`List` gives it for both service names; `Watch` streams it, re-asking `health()` every `WATCH_INTERVAL` seconds and at
once when stopping begins; its streams end (status OK) before the server closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._models import Status
from .._proto import SERVICE_NAME, GrpcModules
from .adapter import PluginAdapter

__all__ = ["CHECK_TIMEOUT", "SERVICES", "WATCH_INTERVAL", "PluginHealthService"]

CHECK_TIMEOUT = 5.0
"""The longest a probe waits for the plugin's `health()` before the answer is NOT_SERVING."""
WATCH_INTERVAL = 5.0
"""Seconds between two looks at the plugin's `health()` for a `Watch` stream."""
SERVICES = ("", SERVICE_NAME)
"""The service names the health service knows: the whole server and `plugwire.v1.Plugin`."""

_SERVING_STATUSES = frozenset({Status.HEALTHY, Status.DEGRADED})


class PluginHealthService:
    """`grpc.health.v1.Health` for one plugin (registered beside `plugwire.v1.Plugin`).

    Args:
        mods: The loaded grpc modules.
        adapter: The plugin's adapter, whose `health()` decides the status.
    """

    def __init__(self, mods: GrpcModules, adapter: PluginAdapter) -> None:
        self._grpc = mods.grpc
        self._response = mods.health_pb2.HealthCheckResponse
        self._list_response = mods.health_pb2.HealthListResponse
        self._adapter = adapter
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()
        self._asking: set[asyncio.Task[Any]] = set()  # handlers awaiting the plugin's health()
        self._cut_off: set[asyncio.Task[Any]] = set()  # ...and those the close cancelled
        self._watching: set[asyncio.Task[Any]] = set()  # open `Watch` streams' handlers

    def begin_stop(self) -> None:
        """Answer NOT_SERVING from now on, and tell every `Watch` stream at once."""
        self._stopping.set()

    async def aclose(self, timeout: float) -> None:
        """End every `Watch` stream, and answer NOT_SERVING to every probe still waiting for
        the plugin's `health()`; wait (up to `timeout`) until each stream has sent its last
        status and ended, so that the server's close cuts none of them off."""
        self._stopping.set()
        self._closed.set()
        for task in self._asking:
            self._cut_off.add(task)
            task.cancel()
        if self._watching:
            await asyncio.wait(list(self._watching), timeout=timeout)

    async def serving_status(self, budget: float | None = None) -> int:
        """The plugin's health as a `HealthCheckResponse.ServingStatus`."""
        response = self._response
        if self._stopping.is_set():
            return int(response.NOT_SERVING)
        # Answer before the probe gives up (a late answer is a failed probe without a reason).
        budget = CHECK_TIMEOUT if budget is None else min(budget * 0.75, CHECK_TIMEOUT)
        task = asyncio.current_task()
        assert task is not None  # grpc runs every handler in a task
        self._asking.add(task)
        try:
            async with asyncio.timeout(budget):
                report = await self._adapter.health()
        except asyncio.CancelledError:
            if task not in self._cut_off:
                raise
            self._cut_off.discard(task)
            task.uncancel()
            return int(response.NOT_SERVING)
        except Exception:  # raised or too slow: a probe must not see it as serving
            return int(response.NOT_SERVING)
        finally:
            self._asking.discard(task)
        return int(response.SERVING if report.status in _SERVING_STATUSES else response.NOT_SERVING)

    async def Check(self, request: Any, context: Any) -> Any:
        if request.service not in SERVICES:
            await context.abort(self._grpc.StatusCode.NOT_FOUND, f"unknown service {request.service[:64]!r}")
        return self._response(status=await self.serving_status(context.time_remaining()))

    async def List(self, request: Any, context: Any) -> Any:
        status = self._response(status=await self.serving_status(context.time_remaining()))
        return self._list_response(statuses=dict.fromkeys(SERVICES, status))

    async def Watch(self, request: Any, context: Any) -> None:
        response = self._response
        known = request.service in SERVICES
        interval = WATCH_INTERVAL  # read here, so a test can shorten it
        last = None
        task = asyncio.current_task()
        assert task is not None  # grpc runs every handler in a task
        self._watching.add(task)
        try:
            while True:
                # Read before the status is asked and written: a stop that begins while they
                # await is seen on the next round, which then sends NOT_SERVING.
                stopping = self._stopping.is_set()
                status = await self.serving_status() if known else int(response.SERVICE_UNKNOWN)
                if known and stopping:
                    status = int(response.NOT_SERVING)
                if status != last:
                    await context.write(response(status=status))
                    last = status
                if stopping:
                    await self._closed.wait()  # NOT_SERVING for good: only the close is left
                    return
                try:
                    async with asyncio.timeout(interval):
                        await self._stopping.wait()
                except TimeoutError:
                    pass
        finally:
            self._watching.discard(task)
