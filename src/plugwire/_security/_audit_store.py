"""Where audit rows live: an SQLite database (default) or a JSON-lines file, each safe to
share between many writer processes.

A writer hands the store rows without sequence numbers or hashes; the store takes the file's
write lock (SQLite's `BEGIN IMMEDIATE`, or `flock` on the JSON-lines file), reads the chain's
head under it, numbers and chains the rows after that head, and commits them before letting
go. So every host process, and every worker of one app, extends the same single chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ._audit_chain import GENESIS, ChainReport, Prepared, StoredRow, canonical_fields, chain_rows, verify_rows

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one writer per JSON-lines file
    fcntl = None  # type: ignore[assignment]

__all__ = ["AuditStore", "JsonLinesStore", "SqliteStore", "open_store"]

#: The schema this code writes: 1 had no `audit_head` (and was never marked), 2 adds it.
SCHEMA_VERSION = 2
#: How long a writer waits for another writer's transaction before its commit fails.
BUSY_TIMEOUT = 30.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event TEXT NOT NULL,
        plugin TEXT,
        fields TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts)",
    "CREATE INDEX IF NOT EXISTS audit_log_plugin ON audit_log (plugin, seq)",
    "CREATE INDEX IF NOT EXISTS audit_log_event ON audit_log (event, seq)",
    # The last row's (seq, hash), written in the same transaction as the rows: a row cut off
    # the end of audit_log then shows as missing, and the next writer chains after it.
    """CREATE TABLE IF NOT EXISTS audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    )""",
)
_SELECT = "SELECT seq, ts, event, plugin, fields, prev_hash, hash FROM audit_log"


class AuditStore(Protocol):
    """A place the writer thread appends rows to, and readers read from."""

    path: Path

    def last_link(self) -> tuple[int, str]:
        """The chain's head (sequence number, hash), or (0, GENESIS)."""
        ...

    def append(self, prepared: Sequence[Prepared]) -> tuple[int, str]:
        """Chain `prepared` after the head and commit them durably, all or none.

        Returns:
            The new head (the last appended row's sequence number and hash).
        """
        ...

    def verify(self, expect: tuple[int, str] | None = None) -> ChainReport:
        """Check the whole chain as one consistent snapshot (see `verify_rows`)."""
        ...

    def select(
        self, *, since: float | None, plugin: str | None, event: str | None, limit: int | None, newest: bool
    ) -> list[StoredRow]:
        """Rows matching every given filter, oldest first (the newest `limit` when `newest`)."""
        ...

    def rows_after(self, seq: int, limit: int) -> list[StoredRow]:
        """At most `limit` committed rows numbered after `seq`, oldest first (for following)."""
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
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT)
        try:
            if create:
                self._use_wal()
                self._db.execute("PRAGMA synchronous=FULL")
                self._upgrade()
            self._has_head = (
                self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_head'").fetchone()
                is not None
            )
        except BaseException:
            self._db.close()
            raise

    def _use_wal(self) -> None:
        # Turning a new file to WAL needs it to itself, and SQLite answers "locked" at once
        # instead of calling its busy handler: writers that start together wait here.
        deadline = time.monotonic() + BUSY_TIMEOUT
        delay = 0.001
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            else:
                return

    def _upgrade(self) -> None:
        # Under the write lock, so that writers starting together create and migrate once.
        with self._write():
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is newer than this plugwire ({SCHEMA_VERSION})")
            for statement in _SCHEMA:
                self._db.execute(statement)
            if self._db.execute("SELECT 1 FROM audit_head").fetchone() is None:
                # a new file, or one written before the head was recorded
                self._db.execute("INSERT INTO audit_head VALUES (1, ?, ?)", self._last_row())
            if version < SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")  # waits up to BUSY_TIMEOUT for other writers
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _last_row(self) -> tuple[int, str]:
        found = self._db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(found[0]), str(found[1])) if found else (0, GENESIS)

    def _recorded_head(self) -> tuple[int, str] | None:
        if not self._has_head:
            return None
        found = self._db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        return (int(found[0]), str(found[1])) if found else None

    def _head(self) -> tuple[int, str]:
        last = self._last_row()
        recorded = self._recorded_head()
        # Rows cut off the end: chain after the recorded head, so the gap stays visible
        # instead of being papered over by the next row.
        return recorded if recorded is not None and recorded[0] > last[0] else last

    def last_link(self) -> tuple[int, str]:
        return self._head()

    def append(self, prepared: Sequence[Prepared]) -> tuple[int, str]:
        if not prepared:
            return self._head()
        with self._write():
            rows = chain_rows(self._head(), prepared)
            self._db.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            head = (rows[-1][0], rows[-1][6])
            self._db.execute("INSERT OR REPLACE INTO audit_head VALUES (1, ?, ?)", head)
        return head

    def verify(self, expect: tuple[int, str] | None = None) -> ChainReport:
        self._db.execute("BEGIN")  # one snapshot: rows and head as one writer left them
        try:
            head = self._recorded_head()
            cursor = self._db.execute(f"{_SELECT} ORDER BY seq")
            try:
                return verify_rows(cursor, head, expect)
            finally:
                cursor.close()
        finally:
            self._db.execute("COMMIT")

    def select(
        self, *, since: float | None, plugin: str | None, event: str | None, limit: int | None, newest: bool
    ) -> list[StoredRow]:
        """Rows matching every given filter, oldest first (the newest `limit` when `newest`)."""
        sql = f"{_SELECT} WHERE 1=1"
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

    def rows_after(self, seq: int, limit: int) -> list[StoredRow]:
        """At most `limit` committed rows numbered after `seq`, oldest first (by the primary key)."""
        return list(self._db.execute(f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)))

    def close(self) -> None:
        self._db.close()


class JsonLinesStore:
    """One JSON object per line, appended and fsynced per batch under an exclusive `flock`.

    The file has no place for a head apart from its rows, so lines cut off its end go
    unnoticed by `verify` (a torn last line from a crash is dropped: it was never committed).
    """

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        if not create and not path.exists():
            raise FileNotFoundError(2, "no such audit file", str(path))
        self._fd = -1
        self._end = 0  # how far this store has read: always just after a newline
        self._head: tuple[int, str] = (0, GENESIS)
        self._followed: tuple[int, int, int] = (0, 0, 0)  # rows_after's (device, inode, offset)
        if create:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                self.last_link()
            except BaseException:
                self.close()
                raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        # Called under the lock: find the last complete line written by anyone since we last
        # looked; a partial line after it is a writer's crash remnant, never committed.
        size = os.fstat(self._fd).st_size
        if size < self._end:  # rewritten or cut by someone else: look again from the start
            self._end, self._head = 0, (0, GENESIS)
        line, complete = self._last_line(size)
        if complete < size:
            os.ftruncate(self._fd, complete)
        if line is not None:
            record = json.loads(line)
            self._head = (int(record["seq"]), str(record["hash"]))
        self._end = complete

    def _last_line(self, size: int) -> tuple[bytes | None, int]:
        data = b""
        start = size
        while start > self._end:
            step = min(1 << 16, start - self._end)
            start -= step
            data = os.pread(self._fd, step, start) + data
            last = data.rfind(b"\n")
            if last < 0:
                continue
            before = data.rfind(b"\n", 0, last)
            if before >= 0 or start == self._end:
                return data[before + 1 : last + 1], start + last + 1
        return None, self._end

    def last_link(self) -> tuple[int, str]:
        with self._locked():
            self._catch_up()
        return self._head

    def append(self, prepared: Sequence[Prepared]) -> tuple[int, str]:
        if not prepared:
            return self.last_link()
        with self._locked():
            self._catch_up()
            rows = chain_rows(self._head, prepared)
            lines = []
            for seq, ts, event, plugin, fields_json, prev_hash, digest in rows:
                record = {
                    "seq": seq,
                    "ts": ts,
                    "event": event,
                    "plugin": plugin,
                    "prev_hash": prev_hash,
                    "hash": digest,
                }
                text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
                # fields go in as the exact canonical text the hash covers
                lines.append(f'{text[:-1]},"fields":{fields_json}}}\n')
            data = memoryview("".join(lines).encode("utf-8"))
            try:
                while data:
                    data = data[os.write(self._fd, data) :]
                os.fsync(self._fd)
            except BaseException:
                os.ftruncate(self._fd, self._end)  # all or none
                raise
            self._end = os.fstat(self._fd).st_size
            self._head = (rows[-1][0], rows[-1][6])
        return self._head

    def raw_rows(self) -> Iterator[StoredRow]:
        """Every complete row in order, as stored."""
        with self.path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a torn last line from a crash, or a batch being written
                yield _stored(json.loads(line))

    def verify(self, expect: tuple[int, str] | None = None) -> ChainReport:
        return verify_rows(self.raw_rows(), None, expect)

    def rows_after(self, seq: int, limit: int) -> list[StoredRow]:
        """At most `limit` complete rows numbered after `seq`, oldest first.

        Reads on from where the last call stopped (from the start when the file was replaced
        or cut shorter), so following a large file does not read it again on every look.
        """
        found: list[StoredRow] = []
        with self.path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            device, inode, offset = self._followed
            if (device, inode) != (info.st_dev, info.st_ino) or info.st_size < offset:
                offset = 0
            handle.seek(offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a batch being written: read it whole next time
                offset += len(line)
                record = json.loads(line)
                if record["seq"] > seq:
                    found.append(_stored(record))
                    if len(found) >= limit:
                        break
            self._followed = (info.st_dev, info.st_ino, offset)
        return found

    def select(
        self, *, since: float | None, plugin: str | None, event: str | None, limit: int | None, newest: bool
    ) -> list[StoredRow]:
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


def _stored(record: dict[str, Any]) -> StoredRow:
    return (
        record["seq"],
        record["ts"],
        record["event"],
        record["plugin"],
        canonical_fields(record["fields"]),
        record["prev_hash"],
        record["hash"],
    )


def open_store(path: Path, *, create: bool = True) -> SqliteStore | JsonLinesStore:
    """The store for `path`: JSON lines when it ends in `.jsonl`, else SQLite."""
    if path.suffix.lower() == ".jsonl":
        return JsonLinesStore(path, create=create)
    return SqliteStore(path, create=create)
