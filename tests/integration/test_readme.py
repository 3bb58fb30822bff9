"""The README's Quick start, done as a new user would do it: in an empty folder, a fresh venv,
plugwire installed with pip (from the wheel of this checkout, with the extras the README names),
each file written exactly as the README shows it, each command run in a shell with the venv
activated, and its output compared with the output the README shows.

Slow (a wheel, a venv, a pip install: about 20 s), and the same on every interpreter, so it is
marked `once`: `make test` runs it on the default interpreter only (scripts/run_matrix.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procguard import SRC

pytestmark = [pytest.mark.once, pytest.mark.usefixtures("no_leaks"), pytest.mark.timeout(240)]

ROOT = SRC.parent
README = ROOT / "README.md"
STEP_TIMEOUT = 180.0  # one pip install on a loaded machine; the whole test takes about 20 s
INSTALL = re.compile(r"""pip install (?P<quote>['"]?)plugwire(?P<extras>\[[a-z0-9,-]+\])?(?P=quote)(?=\s|$)""")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README: its language tag and its text."""

    lang: str
    text: str


def quick_start() -> list[Block]:
    """The fenced blocks of the README's "Quick start" section, in order."""
    text = README.read_text()
    section = text[text.index("\n## Quick start\n") :]
    section = section[: section.index("\n## ", 1)]
    return [Block(lang, body) for lang, body in re.findall(r"^```(\w*)\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)]


def commands(block: Block) -> list[tuple[str, str]]:
    """A `console` block's commands (`$ ...` lines), each with the output shown below it."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command in a console block:\n{block.text}"
            steps[-1][1].append(line)
    return [(command, "".join(f"{line}\n" for line in output)) for command, output in steps]


def user_env(folder: Path) -> dict[str, str]:
    """A plain user's environment: `python3` is the interpreter of this test run (its base, not
    the project's venv), nothing of the suite leaks in (development mode, PYTHONPATH, coverage,
    the project's venv), and pip keeps its configuration and its cache."""
    bin_dir = folder.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    (bin_dir / "python3").symlink_to(base)
    kept = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in {"HOME", "LANG", "LC_ALL", "TMPDIR"}}
    return {**kept, "PATH": f"{bin_dir}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin"}


def sh(script: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euc", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, as `pip wheel` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=STEP_TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"},
    )
    (built,) = out.glob("plugwire-*.whl")
    return built


def test_the_quick_start_runs_as_written_from_a_pip_install_in_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    folder = tmp_path / "quickstart"
    folder.mkdir()
    env = user_env(folder)
    blocks = quick_start()
    assert [b.lang for b in blocks if b.lang not in {"sh", "python", "console"}] == []

    # The setup: the shell block as written, with the wheel standing in for the release.
    (setup,) = [b for b in blocks if b.lang == "sh"]
    match = INSTALL.search(setup.text)
    assert match, f"the Quick start's setup installs plugwire with pip:\n{setup.text}"
    script = INSTALL.sub(lambda m: f'pip install --quiet "{wheel}{m["extras"] or ""}"', setup.text)
    done = sh(script, folder, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (folder / ".venv" / "bin" / "python").exists()

    # The files, each named by its first line.
    files = [b for b in blocks if b.lang == "python"]
    for block in files:
        name = re.fullmatch(r"# ([\w-]+\.py)", block.text.partition("\n")[0])
        assert name, f"a Quick start file starts with a comment naming it:\n{block.text}"
        (folder / name[1]).write_text(block.text)
    assert {p.name for p in folder.glob("*.py")} == {"auth_plugin.py", "host.py", "blocking_host.py"}

    # The commands, in the activated venv, each printing exactly what the README shows.
    steps = [step for b in blocks if b.lang == "console" for step in commands(b)]
    assert [command for command, _ in steps] == ["python host.py", "python blocking_host.py"]
    for command, shown in steps:
        done = sh(f". .venv/bin/activate\n{command}", folder, env)
        assert (done.returncode, done.stderr) == (0, ""), f"$ {command}\n{done.stderr}"
        assert done.stdout == shown, f"$ {command}"
