"""`plugwire new`: a scaffolded plugin passes `plugwire check`, and its own tests pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from plugwire._cli._app import cli
from plugwire._cli._new import LANGUAGES, render
from tests.support.procguard import plugin_env

pytestmark = pytest.mark.usefixtures("no_leaks")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the Node.js plugin cannot run")


def new(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["new", *args])
    return result.exit_code, result.output


def run_scaffolded_tests(project: Path) -> subprocess.CompletedProcess[str]:
    """The project's own pytest run, as its author runs it (this interpreter: plugwire installed)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **plugin_env()},
        check=False,
    )


@pytest.mark.once  # a fresh project run by its own pytest: the same on every interpreter, and slow
@pytest.mark.parametrize(
    ("lang", "command"),
    [
        pytest.param("python", [sys.executable, "shout_it.py"], id="python"),
        pytest.param("node", [NODE or "node", "shout-it.js"], id="node", marks=needs_node),
    ],
)
def test_a_scaffolded_plugin_passes_check_and_its_own_tests(tmp_path: Path, lang: str, command: list[str]) -> None:
    project = tmp_path / "project"
    status, output = new("shout-it", "--lang", lang, "--dir", str(project), "--json")
    assert status == 0, output
    created = json.loads(output)
    files = sorted(Path(p).name for p in created["files"])
    assert files == (
        ["README.md", "shout_it.py", "test_shout_it.py"]
        if lang == "python"
        else ["README.md", "package.json", "shout-it.js", "test_shout_it.py"]
    )
    plugin = [command[0], str(project / command[1])]
    checked = CliRunner().invoke(
        cli,
        [
            "check",
            "--json",
            "--data",
            '{"text": "hi"}',
            *(f"--env={k}={v}" for k, v in plugin_env().items()),
            "--",
            *plugin,
        ],
    )
    assert checked.exit_code == 0, checked.output
    assert all(f["passed"] for f in json.loads(checked.output)["findings"])
    tests = run_scaffolded_tests(project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


def test_the_installed_command_writes_a_project_and_names_the_next_steps(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "plugwire", "new", "word-count"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "60"},
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "created plugin word-count (python) in word-count" in run.stdout
    assert "plugwire check --data" in run.stdout
    assert (tmp_path / "word-count" / "word_count.py").is_file()
    assert (
        "class WordCountPlugin(plugwire.Plugin[Request, Response])"
        in (tmp_path / "word-count" / "word_count.py").read_text()
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad", "is not a plugin name"),
        ("9lives", "is not a plugin name"),
        ("two--dashes", "is not a plugin name"),
        ("trailing-", "is not a plugin name"),
        ("a" * 65, "is not a plugin name"),
        ("../escape", "is not a plugin name"),
        ("json", "would shadow the Python module 'json'"),
        ("class", "would shadow the Python module 'class'"),
        ("plugwire", "would shadow the Python module 'plugwire'"),
        ("test-thing", "pytest would take the plugin for a test module"),
    ],
)
def test_bad_names_exit_2_and_write_nothing(tmp_path: Path, name: str, message: str) -> None:
    status, output = new(name, "--dir", str(tmp_path / "out"))
    assert status == 2
    assert message in output
    assert output.startswith("plugwire: ")
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    status, output = new("shout-it", "--dir", str(tmp_path))
    assert status == 2
    assert "exists and is not an empty folder" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_an_empty_folder_is_used_and_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert new("shout-it", "--dir", str(tmp_path / "empty"))[0] == 0
    assert (tmp_path / "empty" / "shout_it.py").is_file()
    (tmp_path / "file").write_text("")
    status, output = new("shout-it", "--dir", str(tmp_path / "file"))
    assert status == 2
    assert "Traceback" not in output


def test_an_unknown_language_is_a_usage_error(tmp_path: Path) -> None:
    status, output = new("shout-it", "--lang", "ruby", "--dir", str(tmp_path / "x"))
    assert status == 2
    assert "'ruby' is not one of 'python', 'node'" in output


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_placeholder_of_the_templates_has_a_value(tmp_path: Path, lang: str) -> None:
    status, _ = new("shout-it", "--lang", lang, "--dir", str(tmp_path / lang))
    assert status == 0
    for path in (tmp_path / lang).iterdir():
        assert "{{" not in path.read_text(), path.name


def test_render_refuses_a_placeholder_it_has_no_value_for() -> None:
    assert render("a {{x}} b", {"x": "1"}) == "a 1 b"
    with pytest.raises(KeyError):
        render("{{missing}}", {})
