"""The leak checker every process test relies on: it must report a descriptor left open, and
nothing else: not the descriptor its own listing of /proc/self/fd uses, not one already closed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from tests.support import procguard
from tests.support.procguard import _new_fds, open_fds


def test_a_descriptor_left_open_is_reported_with_its_target() -> None:
    before = open_fds()
    read_end, write_end = os.pipe()
    try:
        found = _new_fds(before)
        assert set(found) == {read_end, write_end}
        assert all(what.startswith("pipe:") for what in found.values())
    finally:
        os.close(read_end)
        os.close(write_end)
    assert _new_fds(before) == {}


def test_the_listing_leaves_out_its_own_descriptor() -> None:
    # The listing's descriptor takes the lowest free number; a leak check once reported it
    # (as "?") after a test had taken the number the earlier listing had used.
    lowest = os.dup(0)
    os.close(lowest)
    assert lowest not in open_fds()


def test_a_descriptor_closed_before_it_is_described_is_not_a_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    before = open_fds()
    read_end, write_end = os.pipe()
    listed = open_fds() - before
    os.close(read_end)
    os.close(write_end)
    assert listed == {read_end, write_end}
    # Listed while open, gone when described: another thread's brief descriptor.
    monkeypatch.setattr(procguard, "open_fds", lambda: before | listed)
    assert procguard._new_fds(before) == {}


def test_children_are_listed_as_the_full_scan_of_proc_lists_them_zombies_included() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in procguard.child_pids()
        assert procguard.child_pids() == procguard._scanned_child_pids()
        assert child.stdin is not None
        child.stdin.close()  # it exits; not reaped yet, it is a zombie and still our child
        assert procguard.wait_until(lambda: not procguard.pid_alive(child.pid))
        assert child.pid in procguard.child_pids()
        assert procguard.child_pids() == procguard._scanned_child_pids()
    finally:
        child.kill()
        child.wait()
    assert child.pid not in procguard.child_pids()


def test_a_child_still_exiting_is_given_time_and_one_left_running_is_reported() -> None:
    before = procguard.child_pids()
    quick = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reaper = threading.Thread(target=quick.wait)
        reaper.start()
        assert procguard.leftover_children(before, timeout=3.0) == {slow.pid}
        reaper.join()
    finally:
        slow.kill()
        slow.wait()
    assert procguard.leftover_children(before) == set()
