"""Many writers, one audit file: hosts and worker processes extend one verifiable chain, and
`verify` finds rows that are missing from the middle or cut off the end."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugwire._security import AuditEvent, AuditLog, query_log, verify_log
from plugwire.errors import ErrorCode, SecurityError

from ._helpers import raw_sqlite

HOST = Path(__file__).resolve().parents[2] / "support" / "plugins" / "audit_host_child.py"


@pytest.fixture(params=["audit.db", "audit.jsonl"])
def log_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / str(request.param)


def run_hosts(tmp_path: Path, count: int, rows: int, audit_file: Path | None) -> None:
    """Start `count` host processes, release them together, and wait until each has exited 0."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "XDG_DATA_HOME": str(tmp_path / "data-home")}
    extra = [str(audit_file)] if audit_file is not None else []
    hosts = [
        subprocess.Popen(
            [sys.executable, str(HOST), f"host-{index}", str(rows), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for index in range(count)
    ]
    try:
        for host in hosts:
            assert host.stdout is not None
            assert host.stdout.readline() == "ready\n"
        for host in hosts:  # the barrier: every host is waiting on its stdin
            assert host.stdin is not None
            host.stdin.write("go\n")
            host.stdin.flush()
        outcomes = [host.communicate(timeout=50) for host in hosts]
    finally:
        for host in hosts:
            if host.poll() is None:
                host.kill()
                host.communicate()
    failed = [(host.returncode, err) for host, (_, err) in zip(hosts, outcomes, strict=True) if host.returncode]
    assert failed == []


@pytest.mark.parametrize("audit_file", [None, "shared.jsonl"], ids=["default-sqlite", "jsonl"])
def test_hosts_started_together_on_one_audit_file_lose_no_row_and_the_chain_verifies(
    tmp_path: Path, audit_file: str | None
) -> None:
    hosts, rows = 4, 60
    path = tmp_path / audit_file if audit_file else tmp_path / "data-home" / "plugwire" / "audit.db"
    run_hosts(tmp_path, hosts, rows, tmp_path / audit_file if audit_file else None)
    found = query_log(path)
    # every host's rows, plus the whitelist.loaded row each engine writes when it opens
    assert len(found) == hosts * (rows + 1)
    assert [row.seq for row in found] == list(range(1, len(found) + 1))
    for index in range(hosts):
        counts = [row.fields["count"] for row in found if row.plugin == f"host-{index}"]
        assert counts == list(range(rows)), f"host-{index} lost rows or wrote them out of order"
    assert [row.event for row in found].count("whitelist.loaded") == hosts
    report = verify_log(path)
    assert (report.ok, report.rows, report.first_broken) == (True, len(found), None)
    assert (report.last_seq, report.last_hash) == (found[-1].seq, found[-1].hash)


def test_two_logs_on_one_file_take_turns_in_one_chain(log_path: Path) -> None:
    with AuditLog(log_path) as first, AuditLog(log_path) as second:
        first.record(AuditEvent.STARTED, "a")
        assert first.flush() == 1
        second.record(AuditEvent.STARTED, "b")
        second.record(AuditEvent.STOPPED, "b")
        assert second.flush() == 3
        first.record(AuditEvent.STOPPED, "a")  # the old code wrote this as row 2 again
        assert first.flush() == 4
    assert [(row.seq, row.plugin) for row in query_log(log_path)] == [(1, "a"), (2, "b"), (3, "b"), (4, "a")]
    assert verify_log(log_path).ok


def fill(path: Path, count: int) -> None:
    with AuditLog(path) as audit:
        for index in range(count):
            audit.record(AuditEvent.AUTHORIZED, f"p{index % 3}", index=index)


def test_a_row_deleted_from_the_middle_is_reported_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    fill(path, 10)
    with raw_sqlite(path) as db:
        db.execute("DELETE FROM audit_log WHERE seq IN (5, 6)")
    report = verify_log(path)
    assert (report.ok, report.first_broken, report.last_seq) == (False, 7, 4)
    assert report.reason == "rows 5-6 are missing before row 7"


def test_rows_cut_off_the_end_are_reported_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    fill(path, 10)
    assert verify_log(path).tail_checked
    with raw_sqlite(path) as db:
        db.execute("DELETE FROM audit_log WHERE seq >= 9")
    report = verify_log(path)
    assert (report.ok, report.first_broken, report.rows, report.last_seq) == (False, 9, 8, 8)
    assert "rows 9-10 are missing from the end" in report.reason


def test_the_next_writer_keeps_a_cut_tail_visible(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    fill(path, 5)
    with raw_sqlite(path) as db:
        db.execute("DELETE FROM audit_log WHERE seq = 5")
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STOPPED, "p")
        assert audit.flush() == 6  # chained after the recorded head, not after row 4
    report = verify_log(path)
    assert (report.ok, report.first_broken, report.reason) == (False, 6, "row 5 is missing before row 6")


def test_an_edited_field_is_reported_at_its_row(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    fill(path, 6)
    with raw_sqlite(path) as db:
        db.execute("UPDATE audit_log SET event = 'plugin.stopped' WHERE seq = 3")
    report = verify_log(path)
    assert (report.ok, report.first_broken, report.reason) == (False, 3, "content does not match its hash")


def test_a_json_lines_file_cannot_show_a_cut_tail_and_its_report_says_so(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 4)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]))
    report = verify_log(path)
    assert (report.ok, report.rows, report.last_seq, report.tail_checked) == (True, 2, 2, False)


def test_a_file_rewritten_with_fresh_hashes_verifies_alone_but_not_against_an_expected_head(log_path: Path) -> None:
    fill(log_path, 5)
    good = verify_log(log_path)
    for leftover in log_path.parent.glob(log_path.name + "*"):
        leftover.unlink()  # the whole file, WAL and all
    fill(log_path, 7)
    assert verify_log(log_path).ok
    report = verify_log(log_path, expect=(good.last_seq, good.last_hash))
    assert (report.ok, report.first_broken, report.reason) == (False, 5, "does not match the expected hash")
    with AuditLog(log_path) as audit:
        assert not audit.verify(expect=(9, good.last_hash)).ok  # row 9 was never written


def old_row_hash(prev: str, seq: int, ts: float, event: str, plugin: str, fields: str) -> str:
    # the row hash as every released version computed it
    return hashlib.sha256(f"{prev}\n{seq}\n{ts!r}\n{event}\n{plugin}\n{fields}".encode()).hexdigest()


def test_a_file_written_before_the_head_was_recorded_verifies_and_is_upgraded_by_the_next_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    with raw_sqlite(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, event TEXT NOT NULL,"
            " plugin TEXT, fields TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
        )
        prev = "0" * 64
        for seq in (1, 2, 3):
            digest = old_row_hash(prev, seq, 1000.5 + seq, "plugin.started", "old", '{"n":1}')
            db.execute(
                "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, 1000.5 + seq, "plugin.started", "old", '{"n":1}', prev, digest),
            )
            prev = digest
    report = verify_log(path)
    assert (report.ok, report.rows, report.tail_checked) == (True, 3, False)
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STOPPED, "new")
        assert audit.flush() == 4
    report = verify_log(path)
    assert (report.ok, report.rows, report.tail_checked) == (True, 4, True)
    with raw_sqlite(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_file_from_a_newer_plugwire_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    fill(path, 1)
    with raw_sqlite(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(SecurityError) as caught:
        AuditLog(path)
    assert caught.value.code == ErrorCode.AUDIT_FAILED
    assert "newer" in caught.value.message


def open_handles(path: Path) -> list[str]:
    folder = Path("/proc/self/fd")
    found = []
    for entry in folder.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_file_that_is_not_an_audit_database_is_a_coded_error_that_holds_no_handle(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"this is not an SQLite database, just a file in the way" * 100)
    for attempt in (lambda: verify_log(path), lambda: AuditLog(path)):
        with pytest.raises(SecurityError) as caught:
            attempt()
        assert caught.value.code == ErrorCode.AUDIT_FAILED
        assert open_handles(path) == []  # while the error and its traceback are still alive
