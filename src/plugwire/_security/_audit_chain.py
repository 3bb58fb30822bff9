"""The audit hash chain: what a row is, what its hash covers, and how a chain is verified.

Each row stores the hash of the row before it; a row's own hash covers its sequence number,
time, event, plugin, fields and that previous hash, so editing, deleting or reordering any
row breaks the chain at that row. Rows removed from the *end* leave a shorter chain that is
still whole: only a head recorded somewhere else (the SQLite store keeps one beside the rows,
a user can keep one off the machine) shows that it was longer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

__all__ = [
    "GENESIS",
    "AuditRow",
    "ChainReport",
    "PendingRow",
    "Prepared",
    "StoredRow",
    "canonical_fields",
    "chain_rows",
    "row_hash",
    "to_row",
    "verify_rows",
]

#: The "previous hash" of the first row.
GENESIS = "0" * 64

#: A row as stored: (seq, ts, event, plugin, fields_json, prev_hash, hash).
StoredRow = tuple[int, float, str, str | None, str, str, str]
#: A row ready to be chained by whichever writer commits it: (ts, event, plugin, fields_json).
Prepared = tuple[float, str, str | None, str]


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    """One committed audit row.

    Attributes:
        seq: Position in the log, from 1, without gaps (shared by every writer of the file).
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
        ok: True when every row links to the one before it, its hash is right, and (where
            the file records its head) no row is missing from the end.
        rows: How many rows were checked.
        first_broken: The sequence number of the first bad or missing row, if any.
        reason: What is wrong with it.
        last_seq: The last row up to which every link and hash is right (0 when none is).
        last_hash: That row's hash. Record `last_seq` and `last_hash` of a good report
            somewhere else to detect later that rows were cut off the end.
        tail_checked: True when the file records its head, so that rows removed from the
            end are detected (SQLite files); False for JSON lines and for SQLite files no
            writer of this version has opened yet.
    """

    ok: bool
    rows: int
    first_broken: int | None = None
    reason: str = ""
    last_seq: int = 0
    last_hash: str = GENESIS
    tail_checked: bool = False


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


def chain_rows(last: tuple[int, str], prepared: Sequence[Prepared]) -> list[StoredRow]:
    """Number and hash `prepared` rows so that they follow the row `last` = (seq, hash)."""
    seq, prev = last
    rows: list[StoredRow] = []
    for ts, event, plugin, fields_json in prepared:
        seq += 1
        digest = row_hash(prev, seq, ts, event, plugin, fields_json)
        rows.append((seq, ts, event, plugin, fields_json, prev, digest))
        prev = digest
    return rows


def verify_rows(
    rows: Iterable[StoredRow], head: tuple[int, str] | None = None, expect: tuple[int, str] | None = None
) -> ChainReport:
    """Walk stored rows in order and report the first bad or missing one.

    Args:
        rows: `(seq, ts, event, plugin, fields_json, prev_hash, hash)` tuples, by `seq`.
        head: The last row's (seq, hash) as the file records it apart from the rows: the
            chain must end exactly there.
        expect: A (seq, hash) taken from an earlier good report and kept elsewhere: that row
            must still be there with that hash (the chain may have grown since).
    """
    tail_checked = head is not None
    prev, last, count = GENESIS, 0, 0
    for seq, ts, event, plugin, fields_json, prev_hash, stored in rows:
        count += 1
        reason = ""
        if seq > last + 1:
            reason = f"{_rows(last + 1, seq - 1)} missing before row {seq}"
        elif seq <= last:
            reason = f"expected row {last + 1}, found {seq}"
        elif prev_hash != prev:
            reason = "does not link to the previous row"
        elif row_hash(prev_hash, seq, ts, event, plugin, fields_json) != stored:
            reason = "content does not match its hash"
        elif expect is not None and seq == expect[0] and stored != expect[1]:
            reason = "does not match the expected hash"
        if reason:
            return ChainReport(
                ok=False,
                rows=count,
                first_broken=seq,
                reason=reason,
                last_seq=last,
                last_hash=prev,
                tail_checked=tail_checked,
            )
        prev, last = stored, seq
    first, reason = _tail_fault(last, prev, head, expect)
    return ChainReport(
        ok=not reason,
        rows=count,
        first_broken=first,
        reason=reason,
        last_seq=last,
        last_hash=prev,
        tail_checked=tail_checked,
    )


def _tail_fault(
    last: int, prev: str, head: tuple[int, str] | None, expect: tuple[int, str] | None
) -> tuple[int | None, str]:
    if expect is not None and expect[0] > last:
        return last + 1, f"{_rows(last + 1, expect[0])} missing from the end (row {expect[0]} was expected)"
    if head is None or head == (last, prev):
        return None, ""
    if head[0] > last:
        return last + 1, f"{_rows(last + 1, head[0])} missing from the end (the file records row {head[0]} as its last)"
    if head[0] < last:
        return head[0] + 1, f"rows after {head[0]} were added without updating the recorded head"
    return last, "does not match the hash recorded as the head"


def _rows(first: int, last: int) -> str:
    return f"row {first} is" if first == last else f"rows {first}-{last} are"


def to_row(raw: StoredRow) -> AuditRow:
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
