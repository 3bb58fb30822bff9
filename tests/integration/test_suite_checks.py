"""The suite's own checks (tests/conftest.py), in a pytest run of their own: a test that
leaks fails, and only that test; each test carries the marker of its folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
FILES = {
    "unit/test_cycle.py": (
        "import socket\n"
        "def test_drops_a_socket():\n"
        "    sock = socket.socket()\n"
        "    cycle = [sock]\n"
        "    cycle.append(cycle)\n"
        "def test_after_the_socket():\n"
        "    pass\n"
    ),
    "integration/test_child.py": (
        "import subprocess, sys\n"
        "CHILD = []\n"
        "def test_starts_a_child():\n"
        "    CHILD.append(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']))\n"
        "def test_after_the_child():\n"
        "    CHILD[0].wait()  # stopped by the check, so that it disturbs no later test\n"
    ),
    "unit/test_task.py": (
        "import asyncio\n"
        "async def test_leaves_a_task():\n"
        "    asyncio.get_running_loop().create_task(asyncio.sleep(60))\n"
        "async def test_awaits_its_task():\n"
        "    await asyncio.get_running_loop().create_task(asyncio.sleep(0))\n"
    ),
    "contract/test_contract.py": "def test_contract():\n    pass\n",
    "bench/test_bench.py": "def test_bench():\n    pass\n",
}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The output of one pytest run, in development mode as `make test` runs the suite, of
    the files above beside the suite's conftest, bench deselected by its marker."""
    folder = tmp_path_factory.mktemp("suite")
    (folder / "pytest.ini").write_text(INI)
    (folder / "conftest.py").write_text(CONFTEST.read_text())
    for name, text in FILES.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDEVMODE": "1"}
    argv = [sys.executable, "-m", "pytest", "-v", "-m", "not bench", "-p", "no:xdist"]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=110, check=False)
    return done.stdout


def outcome(output: str, test: str) -> list[str]:
    """What the -v lines say of `test`: PASSED, then ERROR for a failed teardown."""
    return re.findall(rf"::{test} (PASSED|FAILED|ERROR)", output)


def teardown_error(output: str, test: str) -> str:
    """The report of `test`'s failed teardown."""
    start = output.index(f"ERROR at teardown of {test} ")
    end = output.find("\n_____", start + 1)
    return output[start:end]


def test_a_socket_dropped_in_a_reference_cycle_fails_the_test_that_dropped_it(run: str) -> None:
    assert outcome(run, "test_drops_a_socket") == ["PASSED", "ERROR"]
    assert "ResourceWarning: unclosed <socket.socket" in teardown_error(run, "test_drops_a_socket")
    assert outcome(run, "test_after_the_socket") == ["PASSED"]


def test_a_child_process_left_running_fails_the_test_that_started_it(run: str) -> None:
    assert outcome(run, "test_starts_a_child") == ["PASSED", "ERROR"]
    assert "leaked child processes" in teardown_error(run, "test_starts_a_child")
    assert outcome(run, "test_after_the_child") == ["PASSED"]


def test_an_asyncio_task_left_pending_fails_the_async_test_that_created_it(run: str) -> None:
    assert outcome(run, "test_leaves_a_task") == ["PASSED", "ERROR"]
    assert "tasks left pending" in teardown_error(run, "test_leaves_a_task")
    assert outcome(run, "test_awaits_its_task") == ["PASSED"]


def test_each_test_carries_the_marker_of_its_folder(run: str) -> None:
    assert outcome(run, "test_contract") == ["PASSED"]
    assert outcome(run, "test_bench") == []  # deselected by `-m "not bench"`
    assert "1 deselected" in run
