"""Where audit rows live: a hash-chained SQLite table, or a hash-chained JSON-lines file.

Each row stores the hash of the row before it; a row's own hash covers its sequence number,
time, event, plugin, fields and that previous hash, so editing, deleting or reordering any
row breaks the chain at that row.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

__all__ = [
    "GENESIS",
    "AuditRow",
    "AuditStore",
    "ChainReport",
    "JsonLinesStore",
    "PendingRow",
    "SqliteStore",
    "canonical_fields",
    "open_store",
    "row_hash",
    "verify_rows",
]

#: The "previous hash" of the first row.
GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    event TEXT NOT NULL,
    plugin TEXT,
    fields TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts);
CREATE INDEX IF NOT EXISTS audit_log_plugin ON audit_log (plugin, seq);
CREATE INDEX IF NOT EXISTS audit_log_event ON audit_log (event, seq);
"""


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    """One committed audit row.

    Attributes:
        seq: Position in the log, from 1, without gaps.
        time: Unix time the event was recorded.
        event: The event name (see `AuditEvent`).
        plugin: The plugin concerned, if any.
        fields: The event's facts (secrets are never stored).
        prev_hash: The previous row's hash (64 zeros for the first row).
        hash: This row's hash.
    """

    seq: int
    time: float
    event: str
    plugin: str | None
    fields: dict[str, Any]
    prev_hash: str
    hash: str


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    """The result of verifying a log's hash chain.

    Attributes:
        ok: True when every row links to the one before it and its hash is right.
        rows: How many rows were checked.
        first_broken: The sequence number of the first bad row, if any.
        reason: What is wrong with it.
    """

    ok: bool
    rows: int
    first_broken: int | None = None
    reason: str = ""


class PendingRow(msgspec.Struct, frozen=True, array_like=True):
    """A row waiting for the writer: the caller's part (no sequence, hash or JSON yet)."""

    time: float
    event: str
    plugin: str | None
    fields: dict[str, Any] | None


def canonical_fields(fields: dict[str, Any]) -> str:
    """The one JSON text of `fields` that the hash covers."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(  # noqa: PLR0917 - the row's columns, in column order
    prev_hash: str, seq: int, time: float, event: str, plugin: str | None, fields_json: str
) -> str:
    """The hash of a row given the previous row's hash."""
    text = f"{prev_hash}\n{seq}\n{time!r}\n{event}\n{plugin or ''}\n{fields_json}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify_rows(rows: Iterator[tuple[int, float, str, str | None, str, str, str]]) -> ChainReport:
    """Walk `(seq, ts, event, plugin, fields_json, prev_hash, hash)` tuples in order."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    for seq, ts, event, plugin, fields_json, prev_hash, stored in rows:
        count += 1
        if seq != expected_seq:
            return ChainReport(
                ok=False, rows=count, first_broken=seq, reason=f"expected row {expected_seq}, found {seq}"
            )
        if prev_hash != expected_prev:
            return ChainReport(ok=False, rows=count, first_broken=seq, reason="does not link to the previous row")
        if row_hash(prev_hash, seq, ts, event, plugin, fields_json) != stored:
            return ChainReport(ok=False, rows=count, first_broken=seq, reason="content does not match its hash")
        expected_prev = stored
        expected_seq += 1
    return ChainReport(ok=True, rows=count)


class AuditStore(Protocol):
    """A place the writer thread appends chained rows to, and readers read from."""

    path: Path

    def last_link(self) -> tuple[int, str]:
        """The last committed (sequence number, hash), or (0, GENESIS)."""
        ...

    def append(self, rows: Sequence[tuple[int, float, str, str | None, str, str, str]]) -> None:
        """Commit rows durably, all or none."""
        ...

    def raw_rows(self) -> Iterator[tuple[int, float, str, str | None, str, str, str]]:
        """Every row in order, as stored."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


class SqliteStore:
    """An SQLite database in WAL mode with `synchronous=FULL` (a commit survives power loss)."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not create and not path.exists():
            raise FileNotFoundError(2, "no such audit database", str(path))
        if create:
            # Rows name plugins and paths: readable by the host's user only (WAL files follow).
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        # The writer thread owns this connection; readers open their own.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if create:
            self._db.executescript(_SCHEMA)

    def last_link(self) -> tuple[int, str]:
        found = self._db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(found[0]), str(found[1])) if found else (0, GENESIS)

    def append(self, rows: Sequence[tuple[int, float, str, str | None, str, str, str]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def raw_rows(self) -> Iterator[tuple[int, float, str, str | None, str, str, str]]:
        yield from self._db.execute(
            "SELECT seq, ts, event, plugin, fields, prev_hash, hash FROM audit_log ORDER BY seq"
        )

    def select(
        self, *, since: float | None, plugin: str | None, event: str | None, limit: int | None, newest: bool
    ) -> list[tuple[int, float, str, str | None, str, str, str]]:
        """Rows matching every given filter, oldest first (the newest `limit` when `newest`)."""
        sql = "SELECT seq, ts, event, plugin, fields, prev_hash, hash FROM audit_log WHERE 1=1"
        args: list[Any] = []
        if since is not None:
            sql += " AND ts >= ?"
            args.append(since)
        if plugin is not None:
            sql += " AND plugin = ?"
            args.append(plugin)
        if event is not None:
            sql += " AND event = ?"
            args.append(event)
        sql += " ORDER BY seq DESC" if newest else " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        found = list(self._db.execute(sql, args))
        return found[::-1] if newest else found

    def close(self) -> None:
        self._db.close()


class JsonLinesStore:
    """One JSON object per line, appended and fsynced per batch."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not create and not path.exists():
            raise FileNotFoundError(2, "no such audit file", str(path))
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600) if create else -1
        if create:
            self._drop_partial_tail()

    def _drop_partial_tail(self) -> None:
        # A crash mid-write can leave a line without its newline; it was never reported
        # committed, so it is cut off before appending after it.
        size = os.fstat(self._fd).st_size
        if not size:
            return
        data = os.pread(self._fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n")
        keep = size - len(data) + cut + 1 if cut >= 0 else 0
        os.ftruncate(self._fd, keep)

    def last_link(self) -> tuple[int, str]:
        last: tuple[int, str] = (0, GENESIS)
        for row in self.raw_rows():
            last = (row[0], row[6])
        return last

    def append(self, rows: Sequence[tuple[int, float, str, str | None, str, str, str]]) -> None:
        lines = []
        for seq, ts, event, plugin, fields_json, prev_hash, digest in rows:
            record = {"seq": seq, "ts": ts, "event": event, "plugin": plugin, "prev_hash": prev_hash, "hash": digest}
            text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
            # fields go in as the exact canonical text the hash covers
            lines.append(f'{text[:-1]},"fields":{fields_json}}}\n')
        os.write(self._fd, "".join(lines).encode("utf-8"))
        os.fsync(self._fd)

    def raw_rows(self) -> Iterator[tuple[int, float, str, str | None, str, str, str]]:
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a torn last line from a crash: never committed
                record = json.loads(line)
                yield (
                    record["seq"],
                    record["ts"],
                    record["event"],
                    record["plugin"],
                    canonical_fields(record["fields"]),
                    record["prev_hash"],
                    record["hash"],
                )

    def select(
        self, *, since: float | None, plugin: str | None, event: str | None, limit: int | None, newest: bool
    ) -> list[tuple[int, float, str, str | None, str, str, str]]:
        """Rows matching every given filter (a full scan: JSON lines have no index)."""
        found = [
            row
            for row in self.raw_rows()
            if (since is None or row[1] >= since)
            and (plugin is None or row[3] == plugin)
            and (event is None or row[2] == event)
        ]
        if limit is not None:
            found = found[-limit:] if newest else found[:limit]
        return found

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_store(path: Path, *, create: bool = True) -> SqliteStore | JsonLinesStore:
    """The store for `path`: JSON lines when it ends in `.jsonl`, else SQLite."""
    if path.suffix.lower() == ".jsonl":
        return JsonLinesStore(path, create=create)
    return SqliteStore(path, create=create)


def to_row(raw: tuple[int, float, str, str | None, str, str, str]) -> AuditRow:
    """A typed row from a stored tuple."""
    seq, ts, event, plugin, fields_json, prev_hash, digest = raw
    return AuditRow(
        seq=seq,
        time=ts,
        event=event,
        plugin=plugin,
        fields=json.loads(fields_json),
        prev_hash=prev_hash,
        hash=digest,
    )
