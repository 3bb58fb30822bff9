"""`make demo`'s second half, examples/operator_demo.py: the operator's path through the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procguard import EXAMPLES

pytestmark = [pytest.mark.once, pytest.mark.timeout(120)]


def test_the_operator_demo_runs_a_host_calls_it_and_stops_it_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES.parent / "operator_demo.py")],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "ok: " in out
    assert "(2 plugins)" in out
    assert '"event": "ready"' in out
    assert '"auth": "healthy", "stats": "healthy"' in out
    assert '"words": 9' in out  # the stats plugin answered through `plugwire call`
    assert '"valid": false' in out  # and the auth plugin refused the wrong token
    assert "[1201 PLUGIN_NOT_FOUND]" in out
    assert "(exit 2)" in out
    assert "calls        500 (500 ok, 0 failed)" in out  # bench
    assert "metrics: healthy" in out  # health --metrics on the running host
    assert "plugwire top" in out
    assert "closed" in out
    assert '"event": "stopped", "plugins": 2, "cut": {}' in out
    assert "(the host exited 0)" in out
