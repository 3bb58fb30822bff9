"""A host killed with SIGKILL leaves no plugin behind (parent-death signal, end of input); a
host run by `plugwire.run` stops gracefully on SIGTERM: every plugin's `close()` runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.procguard import PLUGINS, pid_alive, plugin_env, wait_until

pytestmark = [
    pytest.mark.faults,
    pytest.mark.usefixtures("no_leaks"),
    pytest.mark.fast_paths_only,
]  # process lifecycle: once, fast


def test_every_plugin_child_exits_within_2_s_when_the_host_is_killed() -> None:
    host = subprocess.Popen(
        [sys.executable, str(PLUGINS / "host_script.py")],
        stdout=subprocess.PIPE,
        env={**os.environ, **plugin_env()},
    )
    try:
        assert host.stdout is not None
        line = host.stdout.readline().decode()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2
        assert all(pid_alive(p) for p in pids)
        host.send_signal(signal.SIGKILL)
        host.wait()
        assert wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=2.0)
    finally:
        host.kill()
        host.wait()
        if host.stdout is not None:
            host.stdout.close()


@contextmanager
def pool_host(mode: str, size: int, markers: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """tests/support/plugins/pool_host.py running `size` plugin processes; yields it and their pids."""
    host = subprocess.Popen(
        [sys.executable, str(PLUGINS / "pool_host.py"), mode, str(size)],
        stdout=subprocess.PIPE,
        env={**os.environ, **plugin_env(PLUGWIRE_TEST_MARKERS=str(markers))},
    )
    try:
        assert host.stdout is not None
        pids = [int(p) for p in host.stdout.readline().split()]
        assert len(set(pids)) == size, pids
        assert all(pid_alive(p) for p in pids)
        yield host, pids
    finally:
        host.kill()
        host.wait()
        if host.stdout is not None:
            host.stdout.close()


def test_a_host_killed_with_sigkill_leaves_none_of_its_pool_of_processes_behind(tmp_path: Path) -> None:
    with pool_host("async", 3, tmp_path) as (host, pids):
        host.send_signal(signal.SIGKILL)
        host.wait()
        # Exit has no event a test can wait on for processes that are not its children.
        assert wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=5.0)
    # Whether a plugin's close() ran is not checked: a plugin can see its input end (the dead
    # host's pipes closed) before the parent-death signal reaches it, and then it stops
    # gracefully. Either way it is gone; on a busy machine both happen (about 1 run in 6).


@pytest.mark.parametrize("mode", ["async", "blocking"])
def test_a_host_run_by_plugwire_run_stops_gracefully_on_sigterm_and_every_close_runs(mode: str, tmp_path: Path) -> None:
    with pool_host(mode, 3, tmp_path) as (host, pids):
        host.send_signal(signal.SIGTERM)
        # The async host's calls are still in flight and its shutdown_timeout is an hour:
        # only a stop that cancels them ends within the test's timeout.
        assert host.wait(timeout=30) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{pid}.closed" for pid in pids)
    assert not any(pid_alive(p) for p in pids)  # the host reaped them before it exited
