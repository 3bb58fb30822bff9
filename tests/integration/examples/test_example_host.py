"""examples/host.py serves until SIGTERM, then stops gracefully: its plugin's close() runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.support.procguard import EXAMPLES, SRC

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_the_example_host_stops_gracefully_on_sigterm() -> None:
    host = subprocess.Popen(
        [sys.executable, str(EXAMPLES.parent / "host.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        assert host.stdout is not None
        assert host.stdout.readline().startswith(b"host: serving")
        assert host.stdout.readline().startswith(b"host: AuthResponse(valid=True")  # the plugin answers
        host.send_signal(signal.SIGTERM)
        _, stderr = host.communicate(timeout=30)
    finally:
        host.kill()
        host.wait()
    assert host.returncode == 128 + signal.SIGTERM
    log = stderr.decode()
    assert "plugwire.plugin.auth: database closed" in log  # the plugin's close() ran
    assert "shutdown complete (1 plugins closed)" in log
    assert "Traceback" not in log
