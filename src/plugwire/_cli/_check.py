"""`plugwire check COMMAND...`: run a plugin executable through the protocol-v1 conformance checks."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

import click
from rich.console import Console
from rich.table import Table

from ..testing.conformance import ConformanceReport, check_plugin

__all__ = ["check_command"]

_MARKS = {"pass": "[green]PASS[/]", "must": "[red]FAIL[/]", "should": "[yellow]WARN[/]"}


@click.command("check", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--request", "request_json", default="{}", show_default=True, help="A valid request payload, as JSON.")
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE", help="Extra environment for the plugin.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each answer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table.")
def check_command(
    command: Sequence[str], request_json: str, env_pairs: Sequence[str], timeout: float, as_json: bool
) -> None:
    """Check that the plugin started by COMMAND speaks plugwire's wire protocol v1.

    Exits 0 when every required check passes, 1 when one fails, 2 on bad arguments.
    Put `--` before a COMMAND that has options of its own.
    """
    try:
        request = json.loads(request_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--request") from None
    env: dict[str, str] = {}
    for pair in env_pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--env")
        env[name] = value
    try:
        report = check_plugin(list(command), request=request, env=env, timeout=timeout)
    except OSError as exc:  # the command itself cannot be started
        raise click.UsageError(f"cannot start {command[0]!r}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps(_as_data(report), indent=2))
    else:
        _print_table(report)
    raise SystemExit(0 if report.ok else 1)


def _as_data(report: ConformanceReport) -> dict[str, object]:
    return {
        "command": list(report.command),
        "ok": report.ok,
        "findings": [
            {"check": f.check, "passed": f.passed, "severity": f.severity, "detail": f.detail} for f in report.findings
        ],
    }


def _print_table(report: ConformanceReport) -> None:
    console = Console(highlight=False)
    table = Table(title=f"plugwire conformance: {shlex.join(report.command)}", title_justify="left")
    table.add_column("result")
    table.add_column("check")
    table.add_column("detail", overflow="fold")
    for finding in report.findings:
        mark = _MARKS["pass" if finding.passed else finding.severity]
        table.add_row(mark, finding.check, finding.detail)
    console.print(table)
    failed = sum(1 for f in report.failures if f.severity == "must")
    warned = len(report.failures) - failed
    verdict = "[green]conforms[/]" if report.ok else f"[red]{failed} required check(s) failed[/]"
    console.print(f"result: {verdict}" + (f", {warned} warning(s)" if warned else ""))
