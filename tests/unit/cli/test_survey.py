"""The pure parts of `list`'s survey: which file a command runs, and how a verdict reads."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from plugwire._cli._survey import Verdict, plugin_file
from plugwire._security import AuditEvent, Decision


def test_an_interpreter_running_a_script_is_the_script(tmp_path: Path) -> None:
    script = tmp_path / "plugin.py"
    script.write_text("pass\n")
    assert plugin_file([sys.executable, "-u", "plugin.py", "--flag"], str(tmp_path)) == script
    assert plugin_file([sys.executable, str(script)], None) == script


def test_a_program_is_itself_found_on_path_when_bare(tmp_path: Path) -> None:
    program = shutil.which("sh")
    assert program is not None
    assert plugin_file(["sh", "-c", "exit 0"], str(tmp_path)) == Path(program)
    assert plugin_file([sys.executable, "-m", "plugwire_plugin"], str(tmp_path)) == Path(sys.executable)


def test_a_missing_program_is_named_where_it_was_looked_for(tmp_path: Path) -> None:
    assert plugin_file(["./no-such-plugin"], str(tmp_path)) == tmp_path / "no-such-plugin"
    assert plugin_file(["no-such-program-on-path"], str(tmp_path)) == tmp_path / "no-such-program-on-path"
    assert plugin_file([], str(tmp_path)) is None


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (1801, "not listed"),
        (1813, "not listed"),
        (1802, "hash mismatch"),
        (1803, "disabled"),
        (1814, "executable not in argv"),
        (1809, "unsafe file"),
    ],
)
def test_a_refusal_reads_as_its_verdict(code: int, label: str) -> None:
    verdict = Verdict.of(Decision("p", False, AuditEvent.UNAUTHORIZED, "why", code))
    assert (verdict.label, verdict.allowed, verdict.code, verdict.reason) == (label, False, code, "why")


def test_an_admission_reads_as_allowed() -> None:
    verdict = Verdict.of(Decision("p", True, AuditEvent.AUTHORIZED, "hash matches the whitelist"))
    assert (verdict.label, verdict.allowed, verdict.code) == ("allowed", True, None)
