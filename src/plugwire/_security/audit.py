"""The audit log: non-blocking `record()`, one writer thread, batched durable commits.

A caller only puts a small tuple on a queue. One thread takes everything queued and hands
it to the store, which chains it after the file's head (each row stores the previous row's
hash) and commits it as one transaction under the file's write lock, so many processes can
share one file; `flush()` waits until everything queued before it is committed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .._config import SecurityAuditConfig
from .._errors import ErrorCode, SecurityError
from ._audit_chain import AuditRow, ChainReport, PendingRow, Prepared, canonical_fields, to_row
from ._audit_store import JsonLinesStore, SqliteStore, open_store

__all__ = [
    "AuditEvent",
    "AuditFollower",
    "AuditLog",
    "AuditRow",
    "ChainReport",
    "default_audit_path",
    "query_log",
    "redact",
    "verify_log",
]

_LOG = logging.getLogger("plugwire.security")
_BATCH = 1024
_REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)|secret|token|api[_-]?key|authorization|credential|cookie|private[_-]?key|^auth$)", re.I
)


class AuditEvent(enum.StrEnum):
    """Every event the audit log records."""

    AUTHORIZED = "plugin.authorized"
    UNAUTHORIZED = "plugin.unauthorized"
    HASH_MISMATCH = "plugin.hash_mismatch"
    STARTED = "plugin.started"
    STOPPED = "plugin.stopped"
    CRASHED = "plugin.crashed"
    RESTARTED = "plugin.restarted"
    REPLACED = "plugin.replaced"
    REPLACE_FAILED = "plugin.replace_failed"
    WHITELIST_LOADED = "whitelist.loaded"
    WHITELIST_CHANGED = "whitelist.changed"
    WHITELIST_REJECTED = "whitelist.rejected"
    POLICY_CHANGED = "policy.changed"
    CONFIG_CHANGED = "config.changed"
    AUTH_FAILURE = "auth.failure"
    DISCOVERY_REFUSED = "discovery.refused"


_CONFIG_EVENTS = frozenset(
    {
        AuditEvent.WHITELIST_LOADED,
        AuditEvent.WHITELIST_CHANGED,
        AuditEvent.WHITELIST_REJECTED,
        AuditEvent.POLICY_CHANGED,
        AuditEvent.CONFIG_CHANGED,
    }
)
_UNAUTHORIZED_EVENTS = frozenset({AuditEvent.UNAUTHORIZED, AuditEvent.HASH_MISMATCH, AuditEvent.DISCOVERY_REFUSED})


def default_audit_path() -> Path:
    """The host's data folder: `$XDG_DATA_HOME/plugwire/audit.db` (or `~/.local/share/...`)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "plugwire" / "audit.db"


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """`value` with secret-looking keys and every known secret string replaced."""
    known = tuple(s for s in secrets if s)
    return _redact(value, known)


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {
            str(key): _REDACTED if _SECRET_KEY.search(str(key)) and item not in ("", None) else _redact(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, secrets) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else is stored as text, so it is made text here, where secrets are masked.
    text = value if isinstance(value, str) else str(value)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _fields_json(fields: dict[str, Any] | None, secrets: tuple[str, ...]) -> str:
    if not fields:
        return "{}"
    try:
        return canonical_fields(_redact(fields, secrets))
    except (TypeError, ValueError, RecursionError) as exc:  # e.g. keys of mixed types: keep the row, say why
        return canonical_fields({"unrecordable_fields": f"{type(exc).__name__}: {exc}"})


class AuditLog:
    """A hash-chained audit log in SQLite (default) or JSON lines (`.jsonl`).

    Args:
        path: The database or `.jsonl` file; its folder is created (0700) if missing.
        config: Which events to keep (`log_unauthorized`, `log_authorized`,
            `log_config_changes`); `include_metadata` is applied by the policy engine.
            Without it every event is kept.
        on_commit: Called from the writer thread with the sequence number of the batch's
            last row after each commit (for monitoring; it must be quick).

    Many processes (several hosts, the workers of one app) may write one file: each commit
    extends the file's single chain under its write lock.

    `record()` never blocks on disk. Close with `close()` (which flushes first).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: SecurityAuditConfig | None = None,
        *,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        settings = config or SecurityAuditConfig(enabled=True, log_authorized=True)
        self.log_unauthorized = settings.log_unauthorized
        self.log_authorized = settings.log_authorized
        self.log_config_changes = settings.log_config_changes
        self.include_metadata = settings.include_metadata
        self._on_commit = on_commit
        self._secrets: tuple[str, ...] = ()
        self._queue: queue.SimpleQueue[PendingRow | threading.Event | None] = queue.SimpleQueue()
        self._failures: list[str] = []
        self._committed = 0
        self._closed = False
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._store = open_store(self.path)
        except Exception as exc:
            raise SecurityError(f"cannot open the audit log {self.path}: {exc}", code=ErrorCode.AUDIT_FAILED) from exc
        self._thread = threading.Thread(target=self._write_loop, name="plugwire-audit", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ writing
    def wants(self, event: AuditEvent | str) -> bool:
        """Whether `event` is kept under this log's settings."""
        if event == AuditEvent.AUTHORIZED:
            return self.log_authorized
        if event in _UNAUTHORIZED_EVENTS:
            return self.log_unauthorized
        if event in _CONFIG_EVENTS:
            return self.log_config_changes
        return True

    def add_secret(self, secret: str) -> None:
        """Never store `secret` (for example a plugin's API key), wherever it appears."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def record(self, event: AuditEvent | str, plugin: str | None = None, **fields: Any) -> bool:
        """Queue one event; returns at once (the writer thread commits it).

        Keys that look like secrets (password, token, api_key, ...) and any string added with
        `add_secret` are replaced by "[redacted]" before the row exists.

        Returns:
            False when the event is filtered out by the settings or the log is closed.
        """
        if self._closed or not self.wants(event):
            return False
        # Redaction and JSON happen on the writer thread: the caller pays for one tuple.
        self._queue.put(PendingRow(time.time(), str(event), plugin, fields or None))
        return True

    def _write_loop(self) -> None:
        stop = False
        try:
            while not stop:
                batch: list[PendingRow] = []
                waiters: list[threading.Event] = []
                item = self._queue.get()
                while True:
                    if item is None:
                        stop = True
                    elif isinstance(item, threading.Event):
                        waiters.append(item)
                    else:
                        batch.append(item)
                    if len(batch) >= _BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit(batch)
                for waiter in waiters:
                    waiter.set()
        finally:
            self._store.close()

    def _commit(self, batch: list[PendingRow]) -> None:
        secrets = self._secrets
        try:
            prepared: list[Prepared] = [
                (pending.time, pending.event, pending.plugin, _fields_json(pending.fields, secrets))
                for pending in batch
            ]
            # The store numbers and chains the rows under the file's write lock: other
            # processes may have extended the chain since this one last wrote.
            seq, _ = self._store.append(prepared)
        except Exception as exc:  # disk full, locked past the busy timeout: nothing was committed
            message = f"audit log {self.path}: could not commit {len(batch)} rows: {exc}"
            self._failures.append(message)
            _LOG.error(message)
            return
        self._committed = seq
        if self._on_commit is not None:
            try:
                self._on_commit(seq)
            except Exception:
                _LOG.exception("audit on_commit hook failed")

    @property
    def committed(self) -> int:
        """The sequence number of this log's last committed row (0 before its first commit;
        other processes sharing the file number their rows in the same sequence)."""
        return self._committed

    def flush(self, timeout: float | None = None) -> int:
        """Block until everything recorded before this call is committed.

        Returns:
            The sequence number of this log's last committed row (see `committed`).

        Raises:
            SecurityError: 1811 when the writer failed to commit rows since the last flush,
                or did not finish within `timeout`.
        """
        if self._thread.is_alive():
            done = threading.Event()
            self._queue.put(done)
            if not done.wait(timeout):
                raise SecurityError(
                    f"audit log {self.path}: flush did not finish in {timeout}s", code=ErrorCode.AUDIT_FAILED
                )
        if self._failures:
            failures, self._failures = self._failures, []
            raise SecurityError("; ".join(failures), code=ErrorCode.AUDIT_FAILED)
        return self._committed

    async def aflush(self) -> int:
        """`flush()` without blocking the event loop."""
        return await asyncio.to_thread(self.flush)

    def close(self) -> None:
        """Commit what is queued, stop the writer thread and close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    async def aclose(self) -> None:
        """`close()` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def query(
        self,
        *,
        since: float | None = None,
        plugin: str | None = None,
        event: AuditEvent | str | None = None,
        limit: int | None = None,
    ) -> list[AuditRow]:
        """Committed rows matching every given filter, oldest first (call `flush()` first to
        include what was just recorded)."""
        return query_log(self.path, since=since, plugin=plugin, event=event, limit=limit)

    def verify(self, *, expect: tuple[int, str] | None = None) -> ChainReport:
        """Check the hash chain of every committed row; reports the first broken or missing row.

        Args:
            expect: `(last_seq, last_hash)` of an earlier good report, kept elsewhere: that
                row must still be there with that hash.
        """
        return verify_log(self.path, expect=expect)


def query_log(
    path: str | os.PathLike[str],
    *,
    since: float | None = None,
    plugin: str | None = None,
    event: AuditEvent | str | None = None,
    limit: int | None = None,
    newest: bool = False,
) -> list[AuditRow]:
    """Read rows from an audit file (SQLite or `.jsonl`) without writing to it.

    Args:
        since: Only rows recorded at or after this Unix time.
        plugin: Only rows about this plugin.
        event: Only rows of this event.
        limit: At most this many rows (the oldest, or the newest when `newest`).

    Raises:
        SecurityError: 1811, the file is missing or unreadable.
    """
    store = _open_for_reading(Path(path))
    try:
        found = store.select(
            since=since, plugin=plugin, event=None if event is None else str(event), limit=limit, newest=newest
        )
    except Exception as exc:
        raise SecurityError(f"cannot read the audit log {path}: {exc}", code=ErrorCode.AUDIT_FAILED) from exc
    finally:
        store.close()
    return [to_row(raw) for raw in found]


def verify_log(path: str | os.PathLike[str], *, expect: tuple[int, str] | None = None) -> ChainReport:
    """Verify the hash chain of an audit file; the report names the first broken or missing row.

    A SQLite file records its head beside its rows, so rows deleted from its end are
    reported too; a JSON-lines file cannot show that (`tail_checked` is False). Neither can
    show a file rewritten whole with fresh hashes: for that, keep `last_seq` and `last_hash`
    of a good report somewhere else and pass them back as `expect`.

    Args:
        expect: `(seq, hash)` of a row that must still be in the file with that hash.

    Raises:
        SecurityError: 1811, the file is missing or unreadable.
    """
    store = _open_for_reading(Path(path))
    try:
        return store.verify(expect)
    except Exception as exc:
        raise SecurityError(f"cannot read the audit log {path}: {exc}", code=ErrorCode.AUDIT_FAILED) from exc
    finally:
        store.close()


class AuditFollower:
    """Reads the rows appended to an audit file since it last looked, as a host writes them
    (what `plugwire audit tail --follow` polls). It only reads: writers are never held up.

    Args:
        path: The SQLite or `.jsonl` audit file; it must exist.
        after: Start after this sequence number (0: from the first row).

    Close it with `close()` (or use it as a context manager).

    Raises:
        SecurityError: 1811, the file is missing or unreadable.
    """

    def __init__(self, path: str | os.PathLike[str], *, after: int = 0) -> None:
        self.path = Path(path)
        self._last = after
        self._store = _open_for_reading(self.path)

    @property
    def last_seq(self) -> int:
        """The sequence number of the last row returned (or `after`)."""
        return self._last

    def poll(self, limit: int = _BATCH) -> list[AuditRow]:
        """The committed rows after the last one returned, oldest first, at most `limit`
        (when it returns `limit` rows, more may be waiting: call again at once).

        Raises:
            SecurityError: 1811, the file could not be read.
        """
        try:
            found = self._store.rows_after(self._last, limit)
        except Exception as exc:
            raise SecurityError(f"cannot read the audit log {self.path}: {exc}", code=ErrorCode.AUDIT_FAILED) from exc
        rows = [to_row(raw) for raw in found]
        if rows:
            self._last = rows[-1].seq
        return rows

    def close(self) -> None:
        """Release the file."""
        self._store.close()

    def __enter__(self) -> AuditFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_for_reading(path: Path) -> SqliteStore | JsonLinesStore:
    try:
        return open_store(path, create=False)
    except Exception as exc:
        raise SecurityError(f"cannot open the audit log {path}: {exc}", code=ErrorCode.AUDIT_FAILED) from exc
