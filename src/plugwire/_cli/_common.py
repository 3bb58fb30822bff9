"""What every `plugwire` command shares: output, errors and exit statuses, input parsing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from .._codes import ErrorCode
from .._config import ManagerConfig
from .._errors import PluginError

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "JSON_OPTION",
    "POSITIVE_FLOAT",
    "POSITIVE_INT",
    "code_name",
    "console",
    "describe_error",
    "error_data",
    "fail",
    "load_config",
    "print_json",
    "read_data",
]

EXIT_OK = 0
#: The check failed, the call failed, a plugin is not healthy.
EXIT_FAILED = 1
#: Bad arguments, a missing or invalid file, an address that cannot be reached: nothing was checked.
EXIT_USAGE = 2

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")

POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
POSITIVE_INT = click.IntRange(min=1)


def console(*, stderr: bool = False) -> Console:
    """A console for people: colour on a terminal only, the terminal's width (80 when piped)."""
    return Console(highlight=False, soft_wrap=False, stderr=stderr)


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout (values JSON cannot hold as their `str`)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def code_name(code: int) -> str:
    """The name of an error code (`CONFIG_UNKNOWN_KEY`), or "" for a code plugwire does not define."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return ""


def describe_error(error: PluginError) -> str:
    """`[1001 CONFIG_UNKNOWN_KEY] message`: the code first, so scripts and people both see it."""
    name = code_name(error.code)
    text = str(error)  # "[1001] message (plugin 'x'): caused by ..."
    return text.replace(f"[{error.code}]", f"[{error.code} {name}]", 1) if name else text


def error_data(error: PluginError) -> dict[str, Any]:
    """An error as JSON-ready data: `code`, `name`, `message`, and `plugin` when known."""
    data: dict[str, Any] = {"code": error.code, "name": code_name(error.code), "message": error.message}
    if error.plugin:
        data["plugin"] = error.plugin
    return data


def fail(message: str | PluginError, status: int = EXIT_USAGE) -> NoReturn:
    """Print `plugwire: <message>` on stderr and exit with `status` (2, a usage or setup error)."""
    text = describe_error(message) if isinstance(message, PluginError) else message
    click.echo(f"plugwire: {text}", err=True)
    raise SystemExit(status)


def load_config(path: str | Path) -> ManagerConfig:
    """Load and validate a config file; on any problem print its coded error and exit 2."""
    try:
        return ManagerConfig.load(path)
    except PluginError as exc:
        fail(exc)


def read_data(value: str, *, param_hint: str = "--data") -> Any:
    """A JSON value given inline, as `@file`, or `-` for stdin; bad JSON is a usage error."""
    if value == "-":
        text, where = sys.stdin.read(), "stdin"
    elif value.startswith("@"):
        file = Path(value[1:])
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {file}: {exc.strerror or exc}", param_hint=param_hint) from None
        where = str(file)
    else:
        text, where = value, "the value"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{where} is not JSON: {exc}", param_hint=param_hint) from None
