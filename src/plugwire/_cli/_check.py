"""`plugwire check COMMAND...` and `plugwire check --grpc TARGET`: the conformance checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from .._errors import PluginError
from .._tls import TLSConfig
from ..testing._report import ConformanceReport
from ._common import EXIT_FAILED, EXIT_OK, JSON_OPTION, POSITIVE_FLOAT, code_name, console, fail, print_json, read_data

__all__ = ["check_command"]

_MARKS = {"pass": "[green]PASS[/]", "must": "[red]FAIL[/]", "should": "[yellow]WARN[/]"}


@click.command("check", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--grpc", "target", metavar="TARGET", help="Check the gRPC plugin at host:port or unix:/path instead.")
@click.option(
    "--request",
    "--data",
    "request_data",
    default="{}",
    show_default=True,
    metavar="JSON|@FILE|-",
    help="A valid request for the plugin's calls: JSON, @file or - for stdin.",
)
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE", help="Extra environment for a COMMAND.")
@click.option("--timeout", default=5.0, show_default=True, type=POSITIVE_FLOAT, help="Seconds to wait for each answer.")
@click.option("--ca", "ca_file", type=click.Path(dir_okay=False), help="gRPC over TLS: trust this CA bundle (PEM).")
@click.option("--cert", "cert_file", type=click.Path(dir_okay=False), help="gRPC mTLS: the client certificate (PEM).")
@click.option("--key", "key_file", type=click.Path(dir_okay=False), help="gRPC mTLS: the client key (PEM).")
@click.option("--server-name", default="", help="gRPC over TLS: expect this name in the plugin's certificate.")
@click.option("--api-key-env", metavar="NAME", help="gRPC: send the API key held in environment variable NAME.")
@click.option("--token-env", metavar="NAME", help="gRPC: send the bearer token held in environment variable NAME.")
@JSON_OPTION
def check_command(  # click passes every option by keyword
    *,
    command: Sequence[str],
    target: str | None,
    request_data: str,
    env_pairs: Sequence[str],
    timeout: float,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    server_name: str,
    api_key_env: str | None,
    token_env: str | None,
    as_json: bool,
) -> None:
    """Check that a plugin speaks plugwire's protocol as a host expects.

    Runs COMMAND as a subprocess plugin (put `--` before a COMMAND with options of its own),
    or connects to the gRPC plugin at --grpc TARGET. Each failed check names the error code
    a plugwire host raises on the same behaviour.

    Exit status: 0 every required check passed, 1 one failed, 2 bad arguments, a COMMAND
    that cannot start or a TARGET that cannot be reached (with the host's error code).
    """
    if bool(command) == bool(target):
        raise click.UsageError("give either a plugin COMMAND or --grpc TARGET (one of them)")
    request = read_data(request_data, param_hint="--request")
    tls_options = ca_file or cert_file or key_file or server_name
    if target is None:
        if tls_options or api_key_env or token_env:
            raise click.UsageError("--ca, --cert, --key, --server-name, --api-key-env and --token-env need --grpc")
        report = _check_command(command, request, _env(env_pairs), timeout)
    else:
        if env_pairs:
            raise click.UsageError("--env is for a plugin COMMAND; a gRPC plugin has its own environment")
        tls = _tls(ca_file, cert_file, key_file, server_name)
        report = _check_grpc(target, request, timeout, tls=tls, api_key_env=api_key_env, token_env=token_env)
    if as_json:
        print_json(_as_data(report))
    else:
        _print_table(report)
    raise SystemExit(EXIT_OK if report.ok else EXIT_FAILED)


def _env(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--env")
        env[name] = value
    return env


def _check_command(command: Sequence[str], request: Any, env: dict[str, str], timeout: float) -> ConformanceReport:
    from ..testing.conformance import check_plugin

    try:
        return check_plugin(list(command), request=request, env=env, timeout=timeout)
    except OSError as exc:  # the command itself cannot be started
        fail(f"cannot start {command[0]!r}: {exc.strerror or exc}")


def _tls(ca_file: str | None, cert_file: str | None, key_file: str | None, server_name: str) -> TLSConfig | None:
    if not (ca_file or cert_file or key_file or server_name):
        return None
    try:
        return TLSConfig(
            ca_file=ca_file or "", cert_file=cert_file or "", key_file=key_file or "", server_name=server_name
        )
    except PluginError as exc:  # a certificate without its key
        fail(exc)


def _check_grpc(
    target: str,
    request: Any,
    timeout: float,
    *,
    tls: TLSConfig | None,
    api_key_env: str | None,
    token_env: str | None,
) -> ConformanceReport:
    from .._config import AuthConfig
    from .._models import AuthMethod
    from ..testing.grpc_conformance import check_grpc_plugin

    if api_key_env and token_env:
        raise click.UsageError("--api-key-env and --token-env: a host sends one kind of credential, choose one")
    try:
        auth = None
        if api_key_env:
            auth = AuthConfig(method=AuthMethod.API_KEY, api_key_env=api_key_env)
        elif token_env:
            auth = AuthConfig(method=AuthMethod.BEARER, token_env=token_env)
        return check_grpc_plugin(target, request=request, tls=tls, auth=auth, timeout=timeout)
    except PluginError as exc:  # nothing could be checked: the error a host raises on connecting
        fail(exc)


def _as_data(report: ConformanceReport) -> dict[str, Any]:
    return {
        "target": {"grpc": report.address} if report.address else {"command": list(report.command)},
        "ok": report.ok,
        "findings": [
            {
                "check": f.check,
                "passed": f.passed,
                "severity": f.severity,
                "code": f.code or None,
                "name": code_name(f.code) if f.code else None,
                "detail": f.detail,
            }
            for f in report.findings
        ],
    }


def _print_table(report: ConformanceReport) -> None:
    out = console()
    table = Table(title=f"plugwire conformance: {report.subject}", title_justify="left", expand=False)
    table.add_column("result", no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("code", no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=1)
    for finding in report.findings:
        mark = _MARKS["pass" if finding.passed else finding.severity]
        table.add_row(mark, finding.check, str(finding.code) if finding.code else "", finding.detail)
    out.print(table)
    failed = sum(1 for f in report.failures if f.severity == "must")
    warned = len(report.failures) - failed
    verdict = "[green]conforms[/]" if report.ok else f"[red]{failed} required check(s) failed[/]"
    out.print(f"result: {verdict}" + (f", {warned} warning(s)" if warned else ""))
