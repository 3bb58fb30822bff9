"""`plugwire hash`, `plugwire whitelist verify` and `plugwire audit tail|query|verify`."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.table import Table

from .._config import parse_duration
from .._errors import PluginError
from .._security import ALGORITHMS, AuditRow, digest_file, inspect_file, load_whitelist, query_log, verify_log
from ._common import JSON_OPTION, console, fail, print_json

__all__ = ["audit_group", "hash_command", "whitelist_group"]

_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@click.command("hash")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--algorithm", "-a", type=click.Choice(sorted(ALGORITHMS)), default="sha256", show_default=True)
@JSON_OPTION
def hash_command(files: Sequence[Path], algorithm: str, as_json: bool) -> None:
    """Print ready-to-paste whitelist entries for FILES."""
    entries = []
    for file in files:
        name = _NAME.sub("-", file.stem).strip("-.") or "plugin"
        digest = digest_file(file, algorithm)
        entries.append(
            {"name": name, "path": os.path.abspath(file), "hash": f"{algorithm}:{digest}", "algorithm": algorithm}
        )
    if as_json:
        print_json([{**entry, "enabled": True} for entry in entries])
        return
    for entry in entries:
        click.echo(f"  - name: {json.dumps(entry['name'])}")
        click.echo(f"    path: {json.dumps(entry['path'])}")
        click.echo(f"    hash: {json.dumps(entry['hash'])}")
        click.echo(f"    algorithm: {json.dumps(entry['algorithm'])}")
        click.echo("    enabled: true")


@click.group("whitelist")
def whitelist_group() -> None:
    """Check whitelist files."""


@whitelist_group.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@JSON_OPTION
def whitelist_verify(file: Path, as_json: bool) -> None:
    """Check every entry of FILE against the file on disk; exit 1 on any mismatch."""
    try:
        loaded = load_whitelist(file)
    except PluginError as exc:
        fail(exc)
    results = []
    for entry in loaded:
        row: dict[str, Any] = {
            "name": entry.name,
            "target": str(entry.path or entry.endpoint),
            "expected": entry.pinned,
        }
        if entry.path is None:
            row.update(status="endpoint", detail="a gRPC endpoint: nothing to hash")
        else:
            try:
                facts = inspect_file(entry.path, entry.algorithm, loaded.folders)
            except PluginError as exc:
                row.update(status="error", code=exc.code, detail=exc.message)
            else:
                ok = facts.digest == entry.digest
                row.update(
                    status="ok" if ok else "mismatch",
                    actual=f"{entry.algorithm}:{facts.digest}",
                    detail="" if ok else f"file hashes to {entry.algorithm}:{facts.digest}",
                )
            if not entry.enabled and row["status"] == "ok":
                row["status"] = "disabled"
        results.append(row)
    failed = any(row["status"] in {"mismatch", "error"} for row in results)
    if as_json:
        print_json({"file": str(file), "ok": not failed, "entries": results})
    else:
        table = Table(title=f"{file} ({len(results)} entries)")
        table.add_column("name", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("path / endpoint", overflow="fold")
        table.add_column("detail", overflow="fold")
        styles = {"ok": "green", "disabled": "yellow", "endpoint": "cyan"}
        for row in results:
            style = styles.get(row["status"], "bold red")
            table.add_row(row["name"], f"[{style}]{row['status']}[/]", row["target"], row["detail"])
        console().print(table)
    if failed:
        raise SystemExit(1)


@click.group("audit")
def audit_group() -> None:
    """Read and verify audit logs (SQLite, or .jsonl)."""


def _show_rows(rows: list[AuditRow], as_json: bool, title: str) -> None:
    if as_json:
        print_json([msgspec.to_builtins(row) for row in rows])
        return
    table = Table(title=title)
    table.add_column("seq", no_wrap=True, justify="right")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("plugin", no_wrap=True)
    table.add_column("fields", overflow="fold")
    for row in rows:
        when = dt.datetime.fromtimestamp(row.time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        fields = " ".join(
            f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
            for key, value in sorted(row.fields.items())
        )
        table.add_row(str(row.seq), when, row.event, row.plugin or "", fields)
    console().print(table)


def _parse_since(value: str | None) -> float | None:
    """An epoch number, an ISO 8601 time, or a duration back from now ("15m", "2h")."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
    try:
        return time.time() - parse_duration(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use Unix seconds, an ISO 8601 time, or a duration like 15m") from None


@audit_group.command("tail")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("-n", "--lines", default=20, show_default=True, help="How many of the newest rows.")
@JSON_OPTION
def audit_tail(db: Path, lines: int, as_json: bool) -> None:
    """Show the newest rows of the audit log DB."""
    try:
        rows = query_log(db, limit=lines, newest=True)
    except PluginError as exc:
        fail(exc)
    _show_rows(rows, as_json, f"{db}: last {len(rows)} rows")


@audit_group.command("query")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--since", help="Unix seconds, ISO 8601 time, or a duration back from now (15m).")
@click.option("--plugin", help="Only rows about this plugin.")
@click.option("--event", help="Only rows of this event, e.g. plugin.hash_mismatch.")
@click.option("--limit", type=int, help="At most this many rows (the oldest).")
@JSON_OPTION
def audit_query(
    db: Path, *, since: str | None, plugin: str | None, event: str | None, limit: int | None, as_json: bool
) -> None:
    """Show the rows of the audit log DB that match every filter."""
    try:
        rows = query_log(db, since=_parse_since(since), plugin=plugin, event=event, limit=limit)
    except PluginError as exc:
        fail(exc)
    _show_rows(rows, as_json, f"{db}: {len(rows)} rows")


def _parse_expect(value: str | None) -> tuple[int, str] | None:
    """`SEQ:HASH`, as printed by an earlier `audit verify`."""
    if value is None:
        return None
    seq, _, digest = value.partition(":")
    if not (seq.isdigit() and int(seq) > 0 and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise click.BadParameter(f"{value!r}: use SEQ:HASH, the row and sha256 an earlier verify printed")
    return int(seq), digest


@audit_group.command("verify")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--expect", metavar="SEQ:HASH", help="A head printed by an earlier verify: that row must still be there.")
@JSON_OPTION
def audit_verify(db: Path, expect: str | None, as_json: bool) -> None:
    """Check the hash chain of the audit log DB; exit 1 at the first broken or missing row."""
    anchor = _parse_expect(expect)
    try:
        report = verify_log(db, expect=anchor)
    except PluginError as exc:
        fail(exc)
    if as_json:
        print_json(msgspec.to_builtins(report))
    elif report.ok:
        console().print(f"[green]ok[/]: {report.rows} rows, the chain is intact")
        click.echo(f"head {report.last_seq}:{report.last_hash}")
        if not report.tail_checked:
            console().print("this file does not record its head: rows cut off its end would not show")
    else:
        console().print(f"[bold red]broken[/] at row {report.first_broken}: {report.reason} ({report.rows} rows read)")
    if not report.ok:
        raise SystemExit(1)
