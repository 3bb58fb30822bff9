"""`plugwire list` and `plugwire health`: what a config registers, and how healthy it is."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.table import Table

from .._codes import ErrorCode
from .._config import ManagerConfig
from .._errors import ConfigFileError, PluginError
from .._models import Status
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    JSON_OPTION,
    POSITIVE_FLOAT,
    console,
    describe_error,
    error_data,
    fail,
    load_config,
    print_json,
)

if TYPE_CHECKING:  # imported when a command runs: `plugwire -h` stays quick
    from ._probe import MetricsHealth
    from ._survey import PluginRow, Survey

__all__ = ["health_command", "list_command"]

_CONFIG_ARGUMENT = click.argument(
    "config_file", metavar="[CONFIG]", required=False, type=click.Path(path_type=Path, dir_okay=False)
)


@click.command("list")
@_CONFIG_ARGUMENT
@click.option(
    "--dir", "folder", type=click.Path(path_type=Path), help="List what discovery would register from this folder."
)
@click.option("--pattern", metavar="GLOB", default="", help="With --dir: only files whose name matches (*-plugin).")
@click.option("--no-start", is_flag=True, help="Start nothing: hash and whitelist verdict only (no version).")
@JSON_OPTION
def list_command(config_file: Path | None, folder: Path | None, pattern: str, no_start: bool, as_json: bool) -> None:
    """List the plugins CONFIG registers (or discovery finds in --dir DIR).

    For each: its transport, its version (from its info(): each plugin is started once, then
    stopped), the hash of its file, and the whitelist's verdict when the config names a
    whitelist (allowed, not listed, hash mismatch, disabled). A plugin that cannot start is
    listed with its error. Exit status: 0 every plugin started (with --no-start: every
    plugin's file is there), 1 one did not, 2 a bad config, whitelist or folder.
    """
    if (config_file is None) == (folder is None):
        raise click.UsageError("give a CONFIG file or --dir DIR (one of the two)")
    if pattern and folder is None:
        raise click.UsageError("--pattern goes with --dir")
    config = load_config(config_file) if config_file is not None else _folder_config(folder, pattern)
    from ._survey import Survey

    survey = Survey(config, connect_now=True)
    try:
        asyncio.run(_survey_list(survey, start=not no_start))
    except PluginError as exc:
        fail(exc)
    failed = bool(survey.failed)
    if as_json:
        print_json(
            {
                "config": str(config_file) if config_file else None,
                "dir": str(folder) if folder else None,
                "whitelist": config.security.whitelist_file or None,
                "ok": not failed,
                "plugins": [_row_data(row) for row in survey.rows],
            }
        )
    else:
        _print_list(survey, str(config_file or folder), started=not no_start)
    raise SystemExit(EXIT_FAILED if failed else EXIT_OK)


def _folder_config(folder: Path | None, pattern: str) -> ManagerConfig:
    """A config whose only plugins are what discovery finds in `folder`."""
    assert folder is not None
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "not a folder"
        fail(ConfigFileError(f"{folder}: {what}", code=ErrorCode.CONFIG_FILE_NOT_FOUND))
    data = {"discovery": {"enabled": True, "directories": [os.path.abspath(folder)], "pattern": pattern}}
    try:
        return ManagerConfig.from_dict(data)
    except PluginError as exc:
        fail(exc)


async def _survey_list(survey: Survey, *, start: bool) -> None:
    if start:
        from ._host import open_host

        async with open_host(survey.host_config) as manager:
            await survey.start(manager)
    else:
        survey.look()
    await survey.judge()


def _row_data(row: PluginRow) -> dict[str, Any]:
    info = row.info
    data: dict[str, Any] = {
        "name": row.name,
        "origin": row.origin,
        "transport": row.transport or None,
        "target": row.target or None,
        "state": row.state,
        "version": info.version if info else None,
        "description": info.description if info else None,
        "hash": row.hash or None,
        "whitelist": None,
        "error": error_data(row.error) if row.error else None,
    }
    if row.verdict is not None:
        verdict = row.verdict
        data["whitelist"] = {
            "verdict": verdict.label,
            "allowed": verdict.allowed,
            "code": verdict.code,
            "reason": verdict.reason,
        }
    return data


#: How every table of these commands looks: no side borders, to fit 80 columns.
_TABLE: dict[str, Any] = {"title_justify": "left", "box": box.SIMPLE_HEAD, "pad_edge": False}

_STATE_STYLES = {"running": "green", "failed": "bold red", "disabled": "yellow", "not started": "dim"}


#: Below this many columns a table gets unreadable: each plugin is printed as a few lines.
NARROW = 72


def _print_list(survey: Survey, where: str, *, started: bool) -> None:
    count = len(survey.rows)
    out = console()
    judged = bool(survey.config.security.whitelist_file)
    if out.width < NARROW:
        out.print(f"{where}: {count} plugin{'' if count == 1 else 's'}", markup=False)
        for row in survey.rows:
            version = f", version {row.info.version}" if row.info else ""
            out.print(f"[bold]{_escape(row.name)}[/]: [{_STATE_STYLES.get(row.state, '')}]{row.state}[/]{version}")
            facts = [row.transport or "-", _short_hash(row.hash)]
            if judged:
                facts.append(f"whitelist: {row.verdict.label if row.verdict else '-'}")
            out.print("  " + ", ".join(facts), markup=False)
            if row.error is not None:
                out.print(f"  {describe_error(row.error)}", markup=False)
        _print_policy(survey)
        return
    table = Table(title=f"{where}: {count} plugin{'' if count == 1 else 's'}", **_TABLE)
    table.add_column("name", overflow="fold")
    table.add_column("transport", overflow="fold")
    if started:
        table.add_column("version", overflow="fold")
    table.add_column("state", overflow="fold")
    table.add_column("hash", no_wrap=True, overflow="ellipsis")
    if judged:
        table.add_column("whitelist", overflow="fold")
    for row in survey.rows:
        cells = [row.name, row.transport or "-"]
        if started:
            cells.append(row.info.version if row.info else "-")
        cells.append(f"[{_STATE_STYLES.get(row.state, '')}]{row.state}[/]")
        cells.append(_short_hash(row.hash))
        if judged:
            verdict = row.verdict
            cells.append("-" if verdict is None else f"[{'green' if verdict.allowed else 'red'}]{verdict.label}[/]")
        table.add_row(*cells)
    out.print(table)
    _print_policy(survey)
    for row in survey.rows:
        if row.error is not None:
            out.print(f"{row.name}: {describe_error(row.error)}", markup=False)


def _print_policy(survey: Survey) -> None:
    security = survey.config.security
    if security.whitelist_file:
        policy = security.policy.value if security.enabled else "off (security.enabled is false)"
        console().print(f"whitelist: {security.whitelist_file} (policy: {policy})", markup=False)


def _short_hash(value: str) -> str:
    """`sha256:0123456789…`: enough to tell files apart in a table (--json has it whole)."""
    if not value:
        return "-"
    algorithm, _, digest = value.partition(":")
    return f"{algorithm}:{digest[:10]}…"


# ----------------------------------------------------------------------------- health


@click.command("health")
@_CONFIG_ARGUMENT
@click.option(
    "--metrics",
    "metrics_url",
    metavar="URL",
    help="Read the plugins' status from a running host's Prometheus endpoint instead (starts nothing).",
)
@click.option(
    "--timeout",
    type=POSITIVE_FLOAT,
    help="Seconds each plugin's health check may take (default: its health_check.timeout); "
    "with --metrics, seconds to wait for the endpoint (default 5).",
)
@click.option(
    "--max-age",
    type=POSITIVE_FLOAT,
    default=30.0,
    show_default=True,
    help="With --metrics: a snapshot older than this many seconds (the host's loop no longer answers) fails.",
)
@click.option("--allow-degraded", is_flag=True, help="Count a degraded plugin as healthy.")
@JSON_OPTION
def health_command(
    *,
    config_file: Path | None,
    metrics_url: str | None,
    timeout: float | None,
    max_age: float,
    allow_degraded: bool,
    as_json: bool,
) -> None:
    """Start the plugins CONFIG registers, check each one's health once, and stop them.

    Exit status: 0 every plugin is healthy, 1 one is not (or did not start), 2 a bad config.
    A container health probe for a host run by `plugwire run` should read that host's
    metrics with --metrics URL rather than start a second host.
    """
    if (config_file is None) == (metrics_url is None):
        raise click.UsageError("give a CONFIG file or --metrics URL (one of the two)")
    accepted = {Status.HEALTHY.value, Status.DEGRADED.value} if allow_degraded else {Status.HEALTHY.value}
    if metrics_url is not None:
        from ._probe import read_metrics_health

        try:
            reading = read_metrics_health(metrics_url, timeout or 5.0)
        except PluginError as exc:
            fail(exc)
        _metrics_report(reading, accepted, max_age, as_json)
        return
    assert config_file is not None
    config = load_config(config_file)
    from ._survey import Survey

    survey = Survey(config, health_timeout=timeout)
    asyncio.run(_survey_health(survey))
    rows = survey.rows
    ok = all(_healthy(row, accepted) for row in rows)
    if as_json:
        print_json({"config": str(config_file), "ok": ok, "plugins": [_health_data(row) for row in rows]})
    else:
        _print_health(rows, str(config_file), ok)
    raise SystemExit(EXIT_OK if ok else EXIT_FAILED)


async def _survey_health(survey: Survey) -> None:
    from ._host import open_host

    async with open_host(survey.host_config) as manager:
        await survey.start(manager)
        statuses = await manager.health()
    for row in survey.rows:
        if row.state == "running":
            row.health = statuses.get(row.name)


def _status(row: PluginRow) -> str:
    if row.state != "running":
        return row.state
    return row.health.status.value if row.health is not None else "unknown"


def _healthy(row: PluginRow, accepted: set[str]) -> bool:
    return row.state == "disabled" or _status(row) in accepted


def _health_data(row: PluginRow) -> dict[str, Any]:
    health = row.health
    return {
        "name": row.name,
        "origin": row.origin,
        "status": _status(row),
        "message": health.message if health else (row.error.message if row.error else ""),
        "response_time": health.response_time if health else None,
        "last_check": health.last_check if health else None,
        "error": error_data(row.error) if row.error else None,
    }


_STATUS_STYLES = {"healthy": "green", "degraded": "yellow", "disabled": "dim"}


def _print_health(rows: list[PluginRow], where: str, ok: bool) -> None:
    out = console()
    if out.width < NARROW:
        out.print(f"{where}: {'healthy' if ok else 'NOT healthy'}", markup=False)
        for row in rows:
            status, health = _status(row), row.health
            took = f" in {health.response_time * 1000:.1f} ms" if health else ""
            style = _STATUS_STYLES.get(status, "bold red")
            out.print(f"[bold]{_escape(row.name)}[/]: [{style}]{status}[/]{took}")
            message = health.message if health else (describe_error(row.error) if row.error else "")
            if message:
                out.print(f"  {message}", markup=False)
        return
    table = Table(title=f"{where}: {'healthy' if ok else 'NOT healthy'}", **_TABLE)
    table.add_column("name", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column("message", overflow="fold")
    table.add_column("time", justify="right", overflow="fold")
    table.add_column("checked (UTC)", overflow="fold")
    for row in rows:
        status, health = _status(row), row.health
        message = health.message if health else (describe_error(row.error) if row.error else "")
        took = f"{health.response_time * 1000:.1f} ms" if health else "-"
        when = dt.datetime.fromtimestamp(health.last_check, dt.UTC).strftime("%H:%M:%S") if health else "-"
        style = _STATUS_STYLES.get(status, "bold red")
        table.add_row(row.name, f"[{style}]{status}[/]", _escape(message), took, when)
    out.print(table)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _metrics_report(reading: MetricsHealth, accepted: set[str], max_age: float, as_json: bool) -> None:
    stale = reading.snapshot_age is not None and reading.snapshot_age > max_age
    ok = not stale and all(plugin.status in accepted for plugin in reading.plugins)
    if as_json:
        print_json(
            {
                "metrics": reading.url,
                "ok": ok,
                "snapshot_age": reading.snapshot_age,
                "stale": stale,
                "plugins": [
                    {"name": p.name, "transport": p.transport, "status": p.status, "response_time": p.latency}
                    for p in reading.plugins
                ],
            }
        )
    else:
        table = Table(title=f"{reading.url}: {'healthy' if ok else 'NOT healthy'}", **_TABLE)
        table.add_column("name", overflow="fold")
        table.add_column("transport", overflow="fold")
        table.add_column("status", overflow="fold")
        table.add_column("last check took", justify="right", overflow="fold")
        for plugin in reading.plugins:
            style = _STATUS_STYLES.get(plugin.status, "bold red")
            took = "-" if plugin.latency is None else f"{plugin.latency * 1000:.1f} ms"
            table.add_row(plugin.name, plugin.transport, f"[{style}]{plugin.status}[/]", took)
        out = console()
        out.print(table)
        if reading.snapshot_age is not None:
            late = f" [bold red]older than {max_age:g}s: the host is not answering[/]" if stale else ""
            out.print(f"snapshot taken {reading.snapshot_age:.1f}s ago{late}")
    raise SystemExit(EXIT_OK if ok else EXIT_FAILED)
