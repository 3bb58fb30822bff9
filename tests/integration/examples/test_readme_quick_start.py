"""The README's Quick start, run as a reader would copy it: the plugin file, the async host
and the blocking host, each a file of its own in an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procguard import SRC

pytestmark = [pytest.mark.usefixtures("no_leaks"), pytest.mark.timeout(90)]

README = SRC.parent / "README.md"


def quick_start_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def run(folder: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
    )


def test_the_readme_quick_start_runs_as_written(tmp_path: Path, unused_tcp_port: int) -> None:
    plugin, host, blocking_host = quick_start_blocks()
    (tmp_path / "auth_plugin.py").write_text(plugin)
    # The gRPC backup is down (nobody listens on a free port): the host starts anyway.
    assert '"localhost:9090"' in host
    (tmp_path / "host.py").write_text(host.replace('"localhost:9090"', f'"127.0.0.1:{unused_tcp_port}"'))
    (tmp_path / "blocking_host.py").write_text(blocking_host)

    done = run(tmp_path, "host.py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "AuthResponse(valid=True, user_id='user123')"
    assert lines[1].startswith("{'auth': HealthStatus(status=<Status.HEALTHY: 'healthy'>")
    assert "'backup-auth': HealthStatus(status=<Status.OFFLINE: 'offline'>" in lines[1]
    assert "Traceback" not in done.stderr

    done = run(tmp_path, "blocking_host.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "AuthResponse(valid=True, user_id='user123')\n"
    assert "Traceback" not in done.stderr
