"""Plain `def` plugin methods end to end: the caller's `contextvars`, the thread bound, and no
worker thread left behind, in real plugin processes and in the host's own process."""

from __future__ import annotations

import contextvars
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import plugwire
from plugwire import ExecutionContext, PluginInfo
from tests.support.procguard import PLUGINS, HandDriver

THREADS = [sys.executable, str(PLUGINS / "threads_plugin.py")]

TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("TENANT", default="unset")


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("bound", [[], ["1"]])
def test_a_plain_def_call_sees_the_context_variables_of_the_code_that_serves_it(
    driver_factory: Callable[..., HandDriver], bound: list[str]
) -> None:
    driver = driver_factory([*THREADS, *bound])
    driver.hello()
    driver.send({"type": "call", "id": 1, "payload": {"op": "context"}})
    reply = driver.recv()
    assert reply["payload"]["seen"] == "set before serve()"
    assert reply["payload"]["thread"].startswith("plugwire-plugin")


@pytest.mark.usefixtures("no_leaks")
def test_blocking_calls_up_to_max_threads_run_at_once_and_never_more(driver_factory) -> None:  # type: ignore[no-untyped-def]
    driver = driver_factory([*THREADS, "4"])
    driver.hello()
    for call_id in range(1, 9):  # two rounds of a barrier only four calls running together pass
        driver.send({"type": "call", "id": call_id, "payload": {"op": "barrier", "parties": 4}})
    replies = [driver.recv() for _ in range(8)]
    assert sorted(reply["id"] for reply in replies) == list(range(1, 9))
    assert all(reply["type"] == "result" for reply in replies), replies
    assert max(reply["payload"]["peak"] for reply in replies) == 4


@pytest.mark.usefixtures("no_leaks")
def test_at_exit_no_worker_thread_is_left(driver_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "threads"
    driver = driver_factory([*THREADS, "4"], env={"EXIT_MARKER": str(marker)})
    driver.hello()
    for call_id in range(1, 5):
        driver.send({"type": "call", "id": call_id, "payload": {"op": "barrier", "parties": 4}})
    assert [driver.recv()["type"] for _ in range(4)] == ["result"] * 4  # four workers ran
    driver.sock.shutdown(socket.SHUT_WR)  # end of input: the plugin stops
    assert driver.wait() == 0
    assert [name for name in marker.read_text().split("\n") if name.startswith("plugwire-plugin")] == []


class Tenanted:
    """An in-process plugin whose plain `def` methods read the caller's context variable."""

    def info(self) -> PluginInfo:
        return PluginInfo(name="tenanted")

    def execute(self, ctx: ExecutionContext, request: dict[str, str]) -> dict[str, str]:
        return {"tenant": TENANT.get(), "thread": threading.current_thread().name}


async def test_an_in_process_plain_def_plugin_sees_the_callers_context_variables() -> None:
    async with plugwire.AsyncPluginManager(dict, dict) as manager:  # type: ignore[var-annotated]
        await manager.register(Tenanted())
        TENANT.set("acme")
        answer = await manager.execute("tenanted", {})
    assert answer["tenant"] == "acme"
    assert answer["thread"].startswith("plugwire-plugin")


async def test_after_shutdown_an_in_process_plugin_leaves_no_worker_thread() -> None:
    before = threading.active_count()
    async with plugwire.AsyncPluginManager(dict, dict) as manager:  # type: ignore[var-annotated]
        await manager.register(Tenanted())
        await manager.execute("tenanted", {})
        assert threading.active_count() > before
    assert [t.name for t in threading.enumerate() if t.name.startswith("plugwire-plugin")] == []
    assert threading.active_count() == before
