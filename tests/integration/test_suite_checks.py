"""The suite's own checks (tests/conftest.py), in a pytest run of their own: a test that
leaks fails, and only that test; each test carries the marker of its folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = ROOT / "tests" / "conftest.py"
INI = """
[pytest]
addopts = -p no:cacheprovider -p no:randomly
filterwarnings = error
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
timeout = 60
markers =
    unit
    integration
    contract
    bench
"""

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Write test files under the folders given, with the suite's conftest, and run them in a
    pytest process of their own (in development mode, as `make test` runs the suite)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYTHONDEVMODE", "1")
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST.read_text())

    def go(files: dict[str, str], *args: str) -> pytest.RunResult:
        for name, text in files.items():
            path = pytester.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return pytester.runpytest_subprocess(*args)

    return go


def test_a_socket_dropped_in_a_reference_cycle_fails_the_test_that_dropped_it(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        {
            "unit/test_cycle.py": (
                "import socket\n"
                "def test_drops_a_socket():\n"
                "    sock = socket.socket()\n"
                "    cycle = [sock]\n"
                "    cycle.append(cycle)\n"
                "def test_next():\n"
                "    pass\n"
            )
        }
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_drops_a_socket*", "*ResourceWarning: unclosed <socket.socket*"]
    )
    result.stdout.no_fnmatch_line("ERROR*test_next*")


def test_a_child_process_left_running_fails_the_test_that_started_it(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        {
            "integration/test_child.py": (
                "import subprocess, sys\n"
                "CHILD = []\n"
                "def test_starts_a_child():\n"
                "    CHILD.append(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']))\n"
                "def test_next():\n"
                "    CHILD[0].kill()\n"
                "    CHILD[0].wait()\n"
            )
        }
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_starts_a_child*", "E*leaked child processes*"])


def test_an_asyncio_task_left_pending_fails_the_async_test_that_created_it(run) -> None:  # type: ignore[no-untyped-def]
    result = run(
        {
            "unit/test_task.py": (
                "import asyncio\n"
                "async def test_leaves_a_task():\n"
                "    asyncio.get_running_loop().create_task(asyncio.sleep(60))\n"
                "async def test_awaits_its_task():\n"
                "    await asyncio.get_running_loop().create_task(asyncio.sleep(0))\n"
            )
        }
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_a_task*", "E*tasks left pending*sleep*"])


def test_each_test_carries_the_marker_of_its_folder(run) -> None:  # type: ignore[no-untyped-def]
    files = {
        f"{kind}/test_{kind}.py": "def test_it():\n    pass\n" for kind in ("unit", "integration", "contract", "bench")
    }
    result = run(files, "-m", "not bench", "-v")
    result.assert_outcomes(passed=3, deselected=1)
    result.stdout.no_fnmatch_line("*bench/test_bench.py*PASSED*")
    only = run({}, "-m", "contract", "-v")
    only.assert_outcomes(passed=1, deselected=3)
    only.stdout.fnmatch_lines(["*contract/test_contract.py::test_it PASSED*"])
