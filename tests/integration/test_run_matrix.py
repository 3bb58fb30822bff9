"""scripts/run_matrix.py, the part of `make test` that finds the interpreters: it takes a
working one wherever it is, says why a version is skipped, and fails when none ran."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture
def matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script's module, on a machine whose PATH and pyenv are folders of this test."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "pyenv" / "versions").mkdir(parents=True)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return load_script(ROOT / "scripts" / "run_matrix.py")


def installed(root: Path, version: str, name: str) -> Path:
    """A pyenv-style install of this interpreter under `root`/versions/`version`."""
    folder = root / "versions" / version / "bin"
    folder.mkdir(parents=True)
    (folder / name).symlink_to(sys.executable)
    return folder / name


def test_a_version_with_no_interpreter_anywhere_is_skipped_with_the_reason(matrix: ModuleType) -> None:
    assert matrix.find("3.12") == (None, "no python3.12 on PATH or under pyenv")
    assert matrix.find("3.13", free_threaded=True) == (None, "no python3.13t on PATH or under pyenv")


def test_a_pyenv_shim_that_does_not_run_is_passed_over_for_the_installed_version(
    matrix: ModuleType, tmp_path: Path
) -> None:
    shim = tmp_path / "bin" / f"python{HERE}"
    shim.write_text("#!/bin/sh\necho 'pyenv: version not installed' >&2\nexit 127\n")
    shim.chmod(0o755)
    older = installed(tmp_path / "pyenv", f"{HERE}.1", f"python{HERE}")
    newer = installed(tmp_path / "pyenv", f"{HERE}.10", f"python{HERE}")
    assert matrix.candidates(f"python{HERE}") == [str(shim), str(newer), str(older)]
    assert matrix.find(HERE) == (str(newer), "")


def test_an_interpreter_of_another_version_or_build_is_not_taken(matrix: ModuleType, tmp_path: Path) -> None:
    # Named for 3.12 (or 3.13t) but running this interpreter: refused, and the reason says so.
    other = "3.12" if HERE != "3.12" else "3.13"
    impostor = installed(tmp_path / "pyenv", f"{other}.0", f"python{other}")
    assert matrix.find(other) == (None, f"none of {impostor} runs as python{other}")
    free = installed(tmp_path / "pyenv", f"{HERE}.0t", f"python{HERE}t")
    assert matrix.find(HERE, free_threaded=True) == (None, f"none of {free} runs as python{HERE}t")


def test_the_matrix_names_every_skipped_version_and_fails_when_none_ran(
    matrix: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = next(v for v in matrix.VERSIONS if v != HERE)
    assert matrix.main(["--only", missing, "--default-venv", "no-such-venv", "--no-ft"]) == 1
    out = capsys.readouterr().out
    assert f"SKIPPED: no python{missing} on PATH or under pyenv" in out
    assert f"python{missing}" in out.split("=== test matrix ===")[1]
    assert "no interpreter ran the suite" in out


def test_a_required_version_that_is_skipped_fails_the_matrix(
    matrix: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = next(v for v in matrix.VERSIONS if v != HERE)
    argv = ["--only", missing, "--require", missing, "--default-venv", "no-such-venv", "--no-ft"]
    assert matrix.main(argv) == 1
    assert f"required but skipped: python{missing}" in capsys.readouterr().out


def test_the_other_versions_run_the_selection_without_the_load_and_once_tests(matrix: ModuleType) -> None:
    assert matrix.without_load_tests(["-m", "not bench", "-q"]) == ["-m", "(not bench) and not load and not once"]
    assert matrix.without_load_tests(["-mfaults"]) == ["-m", "(faults) and not load and not once"]
    assert matrix.without_load_tests(["-q"]) == ["-m", "not load and not once"]
