"""A host killed with SIGKILL leaves no plugin behind (parent-death signal, end of input)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from procguard import PLUGINS, pid_alive, plugin_env, wait_until

pytestmark = pytest.mark.usefixtures("no_leaks")


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
