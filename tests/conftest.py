"""Shared fixtures, the kind of each test (by its folder), and the leak checks every test gets.

Kinds: `tests/unit/` (one module at a time, mirroring `src/plugwire/`), `tests/integration/`
(real plugin processes, gRPC servers, the examples, fault injection), `tests/contract/` (what
the project promises in writing: docs match the code, the public surface, the layering, the
typing checks) and `tests/bench/` (the benchmark harness, run once by `make test`, not per
interpreter). Each kind is a marker, set here from the folder: `pytest -m unit`.

Leak checks, on every test: a child process the test started and left running fails it
(`procguard.leftover_children`), and so does an asyncio task it left pending on its loop; at
its teardown the garbage collector runs, so that a file, socket,
transport or SQLite connection it dropped without closing gives its `ResourceWarning`
(an error: `filterwarnings = error`) inside that test, not in whichever test the collector
happened to run next. A plugwire thread it started and left running fails it too.
The objects that exist once every test module is imported are frozen
(`gc.freeze`), so that full collection scans only what tests made.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.procguard import child_pids, leftover_children, no_leaks
from tests.support.sample_plugins import AuthPlugin

__all__ = ["no_leaks"]  # the leak check of tests/support/procguard.py, for every test folder

TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "integration", "contract", "bench")


def pytest_collection_finish() -> None:
    """Every module is imported: move what exists now out of the collector's sight, so that
    the full collection after each test scans only what tests made (~5 ms instead of ~100)."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its kind, from the first folder under tests/."""
    for item in items:
        try:
            top = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if top in KINDS:
            item.add_marker(top)
        if isinstance(item, pytest.Function) and asyncio.iscoroutinefunction(item.obj):
            # Right after `_no_leftovers`: set up before the test's own async fixtures and torn
            # down after them (what is still pending then was left behind by the test), and
            # before the loop closes and `_no_leftovers` collects.
            names = item.fixturenames
            names.insert(names.index("_no_leftovers") + 1 if "_no_leftovers" in names else 0, "_no_tasks_left")


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Set up before every other fixture, so torn down after them (loops closed, servers
    stopped): then collect, and look for child processes."""
    children = child_pids()
    handlers = _signal_handlers()
    threads = set(threading.enumerate())
    yield
    # A full collection: what a test held all along (a transport, a connection) has reached
    # the oldest generation by the time it drops it. Cheap, as the modules' objects are frozen.
    gc.collect()
    left = leftover_children(children)
    for pid in left:  # reported below; stopped here, so that they cannot disturb the next test
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert not left, f"leaked child processes: {left}"
    changed = {name for name, handler in _signal_handlers().items() if handler is not handlers[name]}
    for name in changed:  # reported below; restored here, so that the next test gets Ctrl-C as usual
        signal.signal(getattr(signal, name), handlers[name])
    assert not changed, f"signal handlers left changed: {sorted(changed)}"
    running = _plugwire_threads_left(threads)
    assert not running, f"plugwire threads left running: {running}"


def _plugwire_threads_left(before: set[threading.Thread]) -> list[str]:
    """plugwire's threads (workers of plain `def` methods, a blocking manager's loop, the audit
    writer, process waiters) that the test started and did not stop; those already stopping
    get a moment to end."""
    left = []
    for thread in threading.enumerate():
        if thread in before or not thread.name.startswith("plugwire-"):
            continue
        thread.join(5.0)
        if thread.is_alive():
            left.append(thread.name)
    return left


def _signal_handlers() -> dict[str, object]:
    return {name: signal.getsignal(getattr(signal, name)) for name in ("SIGINT", "SIGTERM")}


@pytest.fixture
async def _no_tasks_left() -> AsyncIterator[None]:
    """Fail an async test that leaves a task pending on its loop (pytest-asyncio would
    cancel it silently when it closes the loop)."""
    yield
    # First what the test dropped: a finalizer may stop the task of an object that owned one
    # (the SDK's eager-start carrier on 3.11 stops with its server).
    gc.collect()
    me = asyncio.current_task()
    for _ in range(3):  # let tasks that were cancelled, or are just finishing, finish
        await asyncio.sleep(0)
    left = [task for task in asyncio.all_tasks() if task is not me and not task.done()]
    for task in left:
        task.cancel()
    assert not left, f"tasks left pending: {left}"


@pytest.fixture
def auth_plugin() -> AuthPlugin:
    return AuthPlugin()


@pytest.fixture(autouse=True)
def _plugwire_log_levels() -> Iterator[None]:
    """A manager built from a config or a builder sets the `plugwire` loggers' level (its
    `log_level`): give every test the levels it started with."""
    loggers = [logging.getLogger(name) for name in ("plugwire", "plugwire.manager")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
