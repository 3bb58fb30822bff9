"""The audit log: non-blocking record, durable hash-chained rows, queries, verification."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugwire import SecurityAuditConfig, SecurityConfig, SecurityPolicy
from plugwire._security import AuditEvent, AuditLog, AuditRow, SecurityEngine, query_log, verify_log
from plugwire.errors import ErrorCode, SecurityError

from ._helpers import raw_sqlite, write_whitelist

CHILD = Path(__file__).resolve().parents[2] / "support" / "plugins" / "audit_writer_child.py"


@pytest.fixture(params=["audit.db", "audit.jsonl"])
def log_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / "logs" / str(request.param)


def test_recorded_events_come_back_as_typed_rows_after_flush(log_path: Path) -> None:
    with AuditLog(log_path) as audit:
        before = time.time()
        audit.record(AuditEvent.STARTED, "alpha", pid=12)
        audit.record(AuditEvent.STOPPED, "alpha", exit_code=0)
        audit.record(AuditEvent.STARTED, "beta", pid=13)
        assert audit.flush() == 3
        rows = audit.query()
        assert [type(row) for row in rows] == [AuditRow] * 3
        assert [(r.seq, r.event, r.plugin) for r in rows] == [
            (1, "plugin.started", "alpha"),
            (2, "plugin.stopped", "alpha"),
            (3, "plugin.started", "beta"),
        ]
        assert rows[0].fields == {"pid": 12}
        assert rows[0].time >= before
        assert [r.seq for r in audit.query(plugin="alpha")] == [1, 2]
        assert [r.seq for r in audit.query(event=AuditEvent.STARTED)] == [1, 3]
        assert [r.seq for r in audit.query(since=rows[2].time)] == [3]
        assert audit.query(since=time.time() + 60) == []
        assert [r.seq for r in query_log(log_path, limit=2, newest=True)] == [2, 3]


def test_the_chain_links_every_row_and_verifies(log_path: Path) -> None:
    with AuditLog(log_path) as audit:
        for index in range(50):
            audit.record(AuditEvent.STARTED, f"p{index % 3}", index=index)
        audit.flush()
        rows = audit.query()
        report = audit.verify()
    assert report.ok
    assert report.rows == 50
    assert rows[0].prev_hash == "0" * 64
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, 50))


def test_reopening_a_log_continues_its_chain(log_path: Path) -> None:
    with AuditLog(log_path) as audit:
        audit.record(AuditEvent.STARTED, "a")
    with AuditLog(log_path) as audit:
        audit.record(AuditEvent.STOPPED, "a")
        audit.flush()
        assert [r.seq for r in audit.query()] == [1, 2]
        assert audit.verify().ok


def test_editing_a_sqlite_row_is_reported_as_the_first_broken_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path) as audit:
        for index in range(10):
            audit.record(AuditEvent.AUTHORIZED, "p", index=index)
    with raw_sqlite(path) as db:
        db.execute("UPDATE audit_log SET fields = ? WHERE seq = 4", ('{"index":99}',))
    report = verify_log(path)
    assert not report.ok
    assert report.first_broken == 4
    assert "hash" in report.reason


def test_deleting_a_sqlite_row_breaks_the_chain_at_the_gap(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path) as audit:
        for index in range(10):
            audit.record(AuditEvent.AUTHORIZED, "p", index=index)
    with raw_sqlite(path) as db:
        db.execute("DELETE FROM audit_log WHERE seq = 6")
    report = verify_log(path)
    assert (report.ok, report.first_broken) == (False, 7)


def test_editing_a_json_lines_row_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        for index in range(5):
            audit.record(AuditEvent.AUTHORIZED, "p", index=index)
    lines = path.read_text().splitlines()
    row = json.loads(lines[2])
    row["plugin"] = "someone-else"
    lines[2] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    report = verify_log(path)
    assert (report.ok, report.first_broken) == (False, 3)


def test_a_torn_json_lines_tail_is_dropped_on_reopen_and_the_chain_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STARTED, "p")
    with path.open("a") as handle:
        handle.write('{"seq":2,"ts":1.0,"eve')  # a crash mid-line
    assert verify_log(path).ok
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STOPPED, "p")
    assert [r.seq for r in query_log(path)] == [1, 2]
    assert verify_log(path).ok


def test_record_returns_while_the_disk_is_blocked_and_flush_waits_for_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STARTED, "p")
        audit.flush()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # hold the write lock
        try:
            assert audit.record(AuditEvent.STOPPED, "p") is True
            with pytest.raises(SecurityError) as caught:
                audit.flush(timeout=0.3)
            assert caught.value.code == ErrorCode.AUDIT_FAILED
            assert audit.committed == 1
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        assert audit.flush() == 2


def test_a_failed_commit_is_reported_by_the_next_flush(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with AuditLog(path) as audit:
        audit.record(AuditEvent.STARTED, "p")
        audit.flush()
        with raw_sqlite(path) as db:
            db.execute("DROP TABLE audit_log")
        audit.record(AuditEvent.STOPPED, "p")
        with pytest.raises(SecurityError) as caught:
            audit.flush()
        assert caught.value.code == ErrorCode.AUDIT_FAILED
        assert "could not commit" in caught.value.message


def test_settings_choose_which_events_are_kept(tmp_path: Path) -> None:
    config = SecurityAuditConfig(enabled=True, log_unauthorized=False, log_authorized=False, log_config_changes=False)
    with AuditLog(tmp_path / "a.db", config) as audit:
        assert not audit.record(AuditEvent.AUTHORIZED, "p")
        assert not audit.record(AuditEvent.UNAUTHORIZED, "p")
        assert not audit.record(AuditEvent.HASH_MISMATCH, "p")
        assert not audit.record(AuditEvent.WHITELIST_CHANGED)
        assert audit.record(AuditEvent.CRASHED, "p")
        audit.flush()
        assert [r.event for r in audit.query()] == ["plugin.crashed"]


def test_secrets_never_reach_a_row(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditLog(path) as audit:
        audit.add_secret("s3cr3t-api-key-value")
        audit.record(
            AuditEvent.AUTH_FAILURE,
            "p",
            password="hunter2",
            api_key="k-123",
            headers={"Authorization": "Bearer tok-456"},
            message="rejected key s3cr3t-api-key-value from host",
            author="security-team@example.com",
        )
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("a.db-*"))
    for secret in (b"hunter2", b"k-123", b"tok-456", b"s3cr3t-api-key-value"):
        assert secret not in raw
    (row,) = query_log(path)
    assert row.fields["password"] == "[redacted]"
    assert row.fields["headers"] == {"Authorization": "[redacted]"}
    assert row.fields["message"] == "rejected key [redacted] from host"
    assert row.fields["author"] == "security-team@example.com"


def test_reading_a_missing_log_is_a_coded_error(tmp_path: Path) -> None:
    with pytest.raises(SecurityError) as caught:
        query_log(tmp_path / "nope.db")
    assert caught.value.code == ErrorCode.AUDIT_FAILED
    assert not (tmp_path / "nope.db").exists()


def test_the_audit_log_may_not_live_inside_a_plugin_folder(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    whitelist = write_whitelist(tmp_path / "w.yaml", [{"name": "a", "path": "plugins/a", "hash": "0" * 64}])
    config = SecurityConfig(
        enabled=True,
        policy=SecurityPolicy.STRICT,
        whitelist_file=str(whitelist),
        audit_config=SecurityAuditConfig(enabled=True, audit_file=str(plugins / "audit.db")),
    )
    with pytest.raises(SecurityError) as caught:
        SecurityEngine.from_config(config)
    assert caught.value.code == ErrorCode.AUDIT_LOCATION
    assert not (plugins / "audit.db").exists()


async def test_the_default_audit_log_is_in_the_hosts_data_folder(tmp_path: Path) -> None:
    config = SecurityConfig(enabled=True, policy=SecurityPolicy.AUDIT)
    engine = SecurityEngine.from_config(config)
    try:
        assert engine.audit is not None
        assert engine.audit.path == tmp_path / "data-home" / "plugwire" / "audit.db"
    finally:
        await engine.aclose()


def test_sigkill_mid_write_keeps_every_reported_commit_and_an_intact_verifiable_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, str(CHILD), str(path)], stdout=subprocess.PIPE, text=True, env=env)
    reported = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("committed "):
                reported = max(reported, int(line.split()[1]))
            if reported >= 1000 or line == "done\n":
                break
        child.send_signal(signal.SIGKILL)
        # lines already written before the kill are reports too
        for line in child.stdout:
            if line.startswith("committed "):
                reported = max(reported, int(line.split()[1]))
    finally:
        child.kill()
        child.wait()
        if child.stdout:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with raw_sqlite(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        total, highest = db.execute("SELECT count(*), max(seq) FROM audit_log").fetchone()
        present = db.execute("SELECT count(*) FROM audit_log WHERE seq <= ?", (reported,)).fetchone()[0]
        leaked = db.execute("SELECT count(*) FROM audit_log WHERE fields LIKE '%hunter2%'").fetchone()[0]
    assert reported >= 1000
    assert present == reported
    assert total == highest >= reported
    assert total < 10_000, "the child finished before it was killed; the test did not kill it mid-write"
    assert leaked == 0
    report = verify_log(path)
    assert report.ok
    assert report.rows == total


def test_a_new_audit_file_is_readable_by_the_hosts_user_only(log_path: Path) -> None:
    with AuditLog(log_path) as audit:
        audit.record(AuditEvent.STARTED, "p")
    assert log_path.stat().st_mode & 0o777 == 0o600
    assert log_path.parent.stat().st_mode & 0o777 == 0o700
