"""`plugwire hash`, `plugwire whitelist verify` and `plugwire audit ...`, through click's runner
and as a real `python -m plugwire._cli` process."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from plugwire._cli._app import cli
from plugwire._security import AuditEvent, AuditLog, load_whitelist


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    path = folder / "my plugin.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def audit_db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STARTED, "alpha", pid=1)
        audit.record(AuditEvent.HASH_MISMATCH, "beta", policy="strict")
        audit.record(AuditEvent.STOPPED, "alpha")
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_hash_prints_entries_that_paste_into_a_whitelist_that_verifies(tmp_path: Path, plugin: Path) -> None:
    code, output = run("hash", str(plugin))
    assert code == 0
    whitelist = tmp_path / "plugins.whitelist"
    whitelist.write_text("version: '1.0'\nplugins:\n" + output)
    (entry,) = yaml.safe_load(whitelist.read_text())["plugins"]
    assert entry["name"] == "my-plugin"
    assert entry["hash"] == "sha256:" + hashlib.sha256(plugin.read_bytes()).hexdigest()
    code, output = run("whitelist", "verify", str(whitelist))
    assert code == 0, output
    assert "ok" in output


def test_hash_json_output_uses_the_chosen_algorithm(plugin: Path) -> None:
    code, output = run("hash", "--algorithm", "sha512", "--json", str(plugin))
    assert code == 0
    (entry,) = json.loads(output)
    assert entry["hash"] == "sha512:" + hashlib.sha512(plugin.read_bytes()).hexdigest()
    assert entry["enabled"] is True


def test_whitelist_verify_exits_non_zero_on_a_mismatch_and_names_the_entry(tmp_path: Path, plugin: Path) -> None:
    whitelist = tmp_path / "w.json"
    good = {"name": "good", "path": str(plugin), "hash": hashlib.sha256(plugin.read_bytes()).hexdigest()}
    bad = {"name": "bad", "path": str(plugin), "hash": "0" * 64}
    gone = {"name": "gone", "path": str(plugin.with_name("missing")), "hash": "0" * 64}
    whitelist.write_text(json.dumps({"plugins": [good, bad, gone]}))
    code, output = run("whitelist", "verify", "--json", str(whitelist))
    assert code == 1
    report = json.loads(output)
    assert report["ok"] is False
    assert [(e["name"], e["status"]) for e in report["entries"]] == [
        ("good", "ok"),
        ("bad", "mismatch"),
        ("gone", "error"),
    ]
    code, output = run("whitelist", "verify", str(whitelist))
    assert code == 1
    assert "mismatch" in output
    assert "bad" in output


def test_whitelist_verify_reports_a_malformed_file_with_its_code(tmp_path: Path) -> None:
    whitelist = tmp_path / "w.yaml"
    whitelist.write_text("plugins: [{name: x, path: ../x, hash: '" + "0" * 64 + "'}]")
    code, output = run("whitelist", "verify", str(whitelist))
    assert code == 2
    assert "[1808 PATH_TRAVERSAL]" in output


def test_audit_tail_and_query_show_rows_as_tables_and_json(audit_db: Path) -> None:
    code, output = run("audit", "tail", "-n", "2", str(audit_db))
    assert code == 0
    assert "plugin.hash_mismatch" in output
    assert "plugin.stopped" in output
    assert "plugin.started" not in output
    code, output = run("audit", "query", "--plugin", "alpha", "--json", str(audit_db))
    assert code == 0
    assert [(r["seq"], r["event"]) for r in json.loads(output)] == [(1, "plugin.started"), (3, "plugin.stopped")]
    code, output = run("audit", "query", "--event", "plugin.hash_mismatch", "--since", "1h", "--json", str(audit_db))
    assert [r["plugin"] for r in json.loads(output)] == ["beta"]
    code, output = run("audit", "query", "--since", "2999-01-01T00:00:00", "--json", str(audit_db))
    assert json.loads(output) == []


def test_audit_verify_exits_non_zero_at_the_first_broken_link(audit_db: Path) -> None:
    code, output = run("audit", "verify", str(audit_db))
    assert code == 0
    assert "3 rows" in output
    with contextlib.closing(sqlite3.connect(audit_db, isolation_level=None)) as db:
        db.execute("UPDATE audit_log SET plugin = 'gamma' WHERE seq = 2")
    code, output = run("audit", "verify", "--json", str(audit_db))
    assert code == 1
    assert json.loads(output)["first_broken"] == 2


def raw_edit(path: Path, sql: str) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(sql)


def test_audit_verify_names_rows_missing_from_the_middle_and_from_the_end(audit_db: Path) -> None:
    with AuditLog(audit_db) as audit:
        for index in range(3):
            audit.record(AuditEvent.AUTHORIZED, "alpha", index=index)
    raw_edit(audit_db, "DELETE FROM audit_log WHERE seq = 5")
    code, output = run("audit", "verify", str(audit_db))
    assert code == 1
    assert "broken at row 6: row 5 is missing before row 6" in output
    raw_edit(audit_db, "DELETE FROM audit_log WHERE seq >= 5")
    code, output = run("audit", "verify", str(audit_db))
    assert code == 1
    assert "broken at row 5: rows 5-6 are missing from the end" in output


def test_audit_verify_prints_the_head_and_checks_it_again_with_expect(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"  # no head in the file itself: only --expect sees a cut tail
    with AuditLog(path) as audit:
        for index in range(4):
            audit.record(AuditEvent.STARTED, "alpha", index=index)
    code, output = run("audit", "verify", str(path))
    assert code == 0
    assert "rows cut off its end would not show" in output
    (head,) = [line.split()[1] for line in output.splitlines() if line.startswith("head ")]
    assert head.startswith("4:")
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STOPPED, "alpha")
    assert run("audit", "verify", "--expect", head, str(path))[0] == 0  # the chain grew past the head
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))
    assert run("audit", "verify", str(path))[0] == 0
    code, output = run("audit", "verify", "--expect", head, str(path))
    assert code == 1
    assert "broken at row 4: row 4 is missing from the end (row 4 was expected)" in output
    code, output = run("audit", "verify", "--expect", "4:nothex", str(path))
    assert code == 2
    assert "SEQ:HASH" in output


def test_audit_commands_on_a_missing_file_fail_with_a_coded_message(tmp_path: Path) -> None:
    code, output = run("audit", "tail", str(tmp_path / "absent.db"))
    assert code == 2
    assert "[1811 AUDIT_FAILED]" in output


def test_the_module_runs_as_a_real_process(plugin: Path, audit_db: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    hashed = subprocess.run(
        [sys.executable, "-m", "plugwire._cli", "hash", "--json", str(plugin)],
        capture_output=True, text=True, env=env, check=False, timeout=30,
    )  # fmt: skip
    assert hashed.returncode == 0, hashed.stderr
    assert json.loads(hashed.stdout)[0]["path"] == str(plugin.resolve())
    verified = subprocess.run(
        [sys.executable, "-m", "plugwire._cli", "audit", "verify", str(audit_db)],
        capture_output=True, text=True, env=env, check=False, timeout=30,
    )  # fmt: skip
    assert verified.returncode == 0
    assert "chain is intact" in verified.stdout


def test_without_the_cli_extra_the_command_names_what_to_install() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = "import sys; sys.modules['click'] = None; from plugwire._cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False, timeout=30
    )
    assert result.returncode == 1
    assert "pip install 'plugwire[cli]'" in result.stderr


def test_hash_name_sets_the_entry_name_of_one_file(tmp_path: Path, plugin: Path) -> None:
    code, output = run("hash", "--name", "auth-service", "--json", str(plugin))
    assert code == 0
    (entry,) = json.loads(output)
    assert (entry["name"], entry["path"]) == ("auth-service", str(plugin))
    code, output = run("hash", "--name", "auth-service", str(plugin))
    whitelist = tmp_path / "w.yaml"
    whitelist.write_text("plugins:\n" + output)
    assert [entry.name for entry in load_whitelist(whitelist)] == ["auth-service"]


def test_hash_refuses_a_name_for_several_files_and_a_name_no_whitelist_accepts(tmp_path: Path, plugin: Path) -> None:
    code, output = run("hash", "--name", "auth", str(plugin), str(plugin))
    assert code == 2
    assert "--name names one entry; got 2 files" in output
    code, output = run("hash", "--name", "bad name!", str(plugin))
    assert code == 2
    assert "expected 1-128 letters, digits" in output
    code, output = run("hash", "--name", "auth", str(tmp_path / "absent"))
    assert code == 2
    assert "does not exist" in output


def test_hash_derives_names_a_whitelist_accepts(tmp_path: Path) -> None:
    odd = tmp_path / "_private plugin.v2.sh"
    odd.write_text("#!/bin/sh\n")
    code, output = run("hash", "--json", str(odd))
    assert code == 0
    (entry,) = json.loads(output)
    assert entry["name"] == "private-plugin.v2"
    whitelist = tmp_path / "w.json"
    whitelist.write_text(json.dumps({"plugins": json.loads(output)}))
    assert load_whitelist(whitelist).get("private-plugin.v2") is not None
