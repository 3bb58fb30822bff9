"""`plugwire hash`, `plugwire whitelist add|update|remove|verify` and `plugwire audit tail|query|verify`."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import msgspec
from rich.table import Table

from .._config import parse_duration
from .._errors import ErrorCode, PluginError
from .._security import (
    ALGORITHMS,
    AuditFollower,
    AuditRow,
    digest_file,
    inspect_file,
    load_whitelist,
    query_log,
    verify_log,
)
from .._security.whitelist import check_entry_name
from .._security.whitelist_file import WhitelistEdit, add_entry, remove_entry, update_entry
from ._common import EXIT_OK, JSON_OPTION, POSITIVE_FLOAT, POSITIVE_INT, console, describe_error, fail, print_json

__all__ = ["audit_group", "hash_command", "whitelist_group"]

_NAME = re.compile(r"[^A-Za-z0-9._-]+")


_ALGORITHM_OPTION = click.option(
    "--algorithm", "-a", type=click.Choice(sorted(ALGORITHMS)), default="sha256", show_default=True
)


def _entry_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_entry_name(value)
    except PluginError as exc:
        raise click.BadParameter(exc.message.removeprefix("name: ")) from None


@click.command("hash")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", callback=_entry_name, help="The entry's name (one FILE only); default: the file's stem.")
@_ALGORITHM_OPTION
@JSON_OPTION
def hash_command(files: Sequence[Path], name: str | None, algorithm: str, as_json: bool) -> None:
    """Print ready-to-paste whitelist entries for FILES."""
    if name is not None and len(files) > 1:
        raise click.UsageError(f"--name names one entry; got {len(files)} files (hash them one at a time)")
    entries = []
    for file in files:
        entry_name = name or _NAME.sub("-", file.stem).strip("-._")[:128] or "plugin"
        digest = digest_file(file, algorithm)
        entries.append(
            {"name": entry_name, "path": os.path.abspath(file), "hash": f"{algorithm}:{digest}", "algorithm": algorithm}
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
    """Edit and check whitelist files (YAML, or JSON/TOML by suffix).

    add, update and remove rewrite the whole file atomically (comments in YAML are not kept),
    and only ever write a file the host loads.
    """


def _complete_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion for NAME: the names in the whitelist FILE given before it."""
    file = ctx.params.get("file")
    try:
        loaded = load_whitelist(file) if file else ()
    except PluginError:
        return []
    return [entry.name for entry in loaded if entry.name.startswith(incomplete)]


_ENDPOINT = click.option("--endpoint", metavar="HOST:PORT", help="A gRPC plugin's endpoint, instead of a file.")
_ENABLED = click.option("--enabled/--disabled", default=None, help="Admit the plugin, or keep the entry but refuse it.")


def _show_edit(edit: WhitelistEdit, file: Path, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "file": str(edit.file),
                "action": edit.action,
                "created": edit.created,
                "entry": edit.entry,
                "previous": edit.previous,
            }
        )
        return
    click.echo(f"{file}: {edit.action} {edit.entry['name']!r}{' (new file)' if edit.created else ''}")
    for key, value in edit.entry.items():
        if key == "name":
            continue
        before = (edit.previous or {}).get(key)
        was = "" if edit.previous is None or before == value else f"  (was {_plain(before)})"
        click.echo(f"  {key}: {_plain(value)}{was}")


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _edit_failed(exc: PluginError, hint: str = "") -> NoReturn:
    fail(f"{describe_error(exc)}{hint}")


@whitelist_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("plugin_path", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", "-n", required=True, callback=_entry_name, help="The plugin name the entry admits.")
@_ENDPOINT
@_ALGORITHM_OPTION
@_ENABLED
@JSON_OPTION
def whitelist_add(
    file: Path, plugin_path: Path | None, *, name: str, endpoint: str | None, algorithm: str, enabled: bool | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Pin PLUGIN_PATH (or a gRPC --endpoint) as NAME in the whitelist FILE (created if missing).

    The file is hashed as the host hashes it before a launch. Its path is written relative to
    FILE's folder when it lies below it, else absolute. A NAME already listed is refused: use
    `plugwire whitelist update`.
    """
    if (plugin_path is None) == (endpoint is None):
        raise click.UsageError("give the plugin's file (PLUGIN_PATH) or its --endpoint, not both or neither")
    try:
        edit = add_entry(
            file, name, path=plugin_path, endpoint=endpoint, algorithm=algorithm, enabled=enabled is not False
        )
    except PluginError as exc:
        hint = ""
        if exc.code == ErrorCode.WHITELIST_DUPLICATE_NAME and "already listed" in exc.message:
            hint = f"; to pin it again, run: plugwire whitelist update {file} {name}"
        _edit_failed(exc, hint)
    _show_edit(edit, file, as_json)


@whitelist_group.command("update")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("name", shell_complete=_complete_names)
@click.option("--path", "plugin_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Pin the file at this path instead.")  # fmt: skip
@click.option("--endpoint", metavar="HOST:PORT", help="Point a gRPC entry at this endpoint.")
@click.option("--algorithm", "-a", type=click.Choice(sorted(ALGORITHMS)), help="Hash with this algorithm instead.")
@_ENABLED
@JSON_OPTION
def whitelist_update(
    file: Path, name: str, *, plugin_path: Path | None, endpoint: str | None, algorithm: str | None,
    enabled: bool | None, as_json: bool,
) -> None:  # fmt: skip
    """Pin the entry NAME of FILE again: hash its file now (after a deploy), or the file at
    --path, or point a gRPC entry at a new --endpoint. The file is rewritten only if the
    entry changed."""
    try:
        edit = update_entry(file, name, path=plugin_path, endpoint=endpoint, algorithm=algorithm, enabled=enabled)
    except PluginError as exc:
        _edit_failed(exc)
    _show_edit(edit, file, as_json)


@whitelist_group.command("remove")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("name", shell_complete=_complete_names)
@JSON_OPTION
def whitelist_remove(file: Path, name: str, as_json: bool) -> None:
    """Remove the entry NAME from FILE."""
    try:
        edit = remove_entry(file, name)
    except PluginError as exc:
        _edit_failed(exc)
    _show_edit(edit, file, as_json)


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
        table = Table(title=f"{file} ({len(results)} {'entry' if len(results) == 1 else 'entries'})")
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


def _when(row: AuditRow) -> str:
    return dt.datetime.fromtimestamp(row.time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _fields_text(row: AuditRow) -> str:
    return " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for key, value in sorted(row.fields.items())
    )


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
        table.add_row(str(row.seq), _when(row), row.event, row.plugin or "", _fields_text(row))
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
@click.option("-n", "--lines", type=POSITIVE_INT, default=20, show_default=True, help="How many of the newest rows.")
@click.option("-f", "--follow", is_flag=True, help="Then print rows as they are written, until Ctrl-C.")
@click.option("--interval", type=POSITIVE_FLOAT, default=0.5, show_default=True,
              help="With --follow: seconds between looks at the file.")  # fmt: skip
@JSON_OPTION
@click.pass_context
def audit_tail(ctx: click.Context, db: Path, *, lines: int, follow: bool, interval: float, as_json: bool) -> None:
    """Show the newest rows of the audit log DB; with --follow, keep printing new rows, one a
    line (JSON lines with --json), as hosts write them, until Ctrl-C."""
    if not follow and ctx.get_parameter_source("interval") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--interval applies to --follow only")
    try:
        rows = query_log(db, limit=lines, newest=True)
    except PluginError as exc:
        fail(exc)
    if follow:
        _follow(db, rows, interval, as_json)
    _show_rows(rows, as_json, f"{db}: last {len(rows)} rows")


def _row_line(row: AuditRow, as_json: bool) -> str:
    if as_json:
        return json.dumps(msgspec.to_builtins(row), ensure_ascii=False, separators=(",", ":"))
    return "  ".join((str(row.seq), _when(row), row.event, row.plugin or "-", _fields_text(row))).rstrip()


def _follow(db: Path, rows: list[AuditRow], interval: float, as_json: bool) -> NoReturn:
    """Print `rows`, then every row committed after them, polling every `interval` seconds."""
    batch = 256
    try:
        with AuditFollower(db, after=rows[-1].seq if rows else 0) as follower:
            while True:
                for row in rows:
                    click.echo(_row_line(row, as_json))
                sys.stdout.flush()
                if len(rows) < batch:
                    time.sleep(interval)  # a file has no event to wait on that works for both stores
                rows = follower.poll(batch)
    except PluginError as exc:
        fail(exc)
    except KeyboardInterrupt:  # Ctrl-C is how a follow ends
        raise SystemExit(EXIT_OK) from None
    except BrokenPipeError:  # the reader (`| head`) went away: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(EXIT_OK) from None


@audit_group.command("query")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--since", help="Unix seconds, ISO 8601 time, or a duration back from now (15m).")
@click.option("--plugin", help="Only rows about this plugin.")
@click.option("--event", help="Only rows of this event, e.g. plugin.hash_mismatch.")
@click.option("--limit", type=POSITIVE_INT, help="At most this many rows (the oldest).")
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
