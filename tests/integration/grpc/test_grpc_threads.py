"""A gRPC plugin's plain `def` methods run in the same bounded thread pool as a stdio plugin's,
bounded by the server's `max_threads`."""

from __future__ import annotations

import asyncio
import threading

import plugwire
from plugwire import ExecutionContext, Plugin, PluginInfo
from tests.support.grpc_support import Answer, Ask, ServeFactory

Manager = plugwire.AsyncPluginManager[Ask, Answer]


class Meeting(Plugin[Ask, Answer]):
    """Plain `def execute`: calls meet in twos at a barrier; answers the most seen running at once."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=20)
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def info(self) -> PluginInfo:
        return PluginInfo(name="meeting")

    def execute(self, ctx: ExecutionContext, request: Ask) -> Answer:  # type: ignore[override]
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            self.barrier.wait()  # passes only with two calls running at once
            return Answer(text=str(self.peak))
        finally:
            with self.lock:
                self.running -= 1


async def test_max_threads_bounds_a_grpc_plugins_plain_def_calls(serve: ServeFactory, manager: Manager) -> None:
    server = await serve(Meeting(), max_threads=2)
    await manager.register(plugwire.grpc(server.address), name="meeting")
    answers = await asyncio.gather(*(manager.execute("meeting", Ask()) for _ in range(6)))
    assert max(int(answer.text) for answer in answers) == 2
