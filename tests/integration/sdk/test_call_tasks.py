"""Each call runs in its own task, whether it answers at once or suspends (the SDK's fast path
must not change what plugin code sees)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.support.procguard import PLUGINS, HandDriver

pytestmark = pytest.mark.usefixtures("no_leaks")

TASKS = [sys.executable, str(PLUGINS / "task_plugin.py")]


@pytest.fixture
def driver() -> Iterator[HandDriver]:
    hand = HandDriver(TASKS)
    hand.hello()
    yield hand
    hand.close()


@pytest.mark.parametrize("suspend", [False, True])
def test_a_call_runs_inside_one_task_with_asyncio_timeout_usable(driver: HandDriver, suspend: bool) -> None:
    driver.send({"type": "call", "id": 1, "payload": {"suspend": suspend}, "ctx": {"request_id": "r1"}})
    reply = driver.recv()
    assert reply["type"] == "result"
    assert reply["payload"] == {"in_task": True, "same_task": True, "leaked": ""}


def test_a_context_variable_set_by_one_call_is_not_seen_by_the_next(driver: HandDriver) -> None:
    for i in range(1, 6):
        driver.send({"type": "call", "id": i, "payload": {"suspend": i % 2 == 0}, "ctx": {"request_id": f"r{i}"}})
        assert driver.recv()["payload"]["leaked"] == ""


def test_many_quick_calls_leave_no_call_in_flight_at_shutdown(driver: HandDriver) -> None:
    for i in range(1, 201):
        driver.send({"type": "call", "id": i, "payload": {"suspend": i % 10 == 0}})
    assert sorted(driver.recv()["id"] for _ in range(200)) == list(range(1, 201))
    driver.send({"type": "shutdown", "grace": 5})
    assert driver.wait() == 0
    assert "stopping (shutdown frame): 0 calls in flight" in driver.stderr()
