"""`plugwire config validate` and `plugwire config show`: a config file as the host reads it."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import click
import msgspec

from .._codes import ErrorCode
from .._config import SECRET_NAME, ManagerConfig, data_format, read_data_file, secret_kind
from .._errors import PluginError
from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, JSON_OPTION, describe_error, error_data, load_config

__all__ = ["REDACTED", "config_group", "redacted"]

#: What a secret is shown as: never its length or any part of it.
REDACTED = "***"


@click.group("config")
def config_group() -> None:
    """Check a config file, or show it with every default filled in."""


@config_group.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@JSON_OPTION
def validate_command(file: Path, as_json: bool) -> None:
    """Check FILE as the host would read it; exit 1 when it is invalid.

    The loader's own validation (every key, type, value and cross-field rule, with "did you
    mean ...?" for a misspelt key or value), then, when security is enabled, the checks the
    host makes before it starts any plugin: a known hash algorithm and a whitelist file that
    loads. Exit status: 0 valid, 1 invalid, 2 the file cannot be read (missing, unreadable,
    not .yaml/.yml/.toml/.json).
    """
    try:
        data_format(file)
        read_data_file(file)
    except PluginError as exc:  # nothing was checked, except for a file too large to be a config
        _report(file, None, exc, as_json, EXIT_FAILED if exc.code == ErrorCode.CONFIG_FILE_TOO_COMPLEX else EXIT_USAGE)
    try:
        config = ManagerConfig.load(file)
        _check_security(config)
    except PluginError as exc:
        _report(file, None, exc, as_json, EXIT_FAILED)
    _report(file, config, None, as_json, EXIT_OK)


def _check_security(config: ManagerConfig) -> None:
    """What the host refuses on start before any plugin runs (the security engine's own checks).

    Raises:
        SecurityError: 1805 an unknown hash algorithm, 1804-1808 a whitelist that does not load.
    """
    security = config.security
    if not security.enabled:
        return
    from .._security.hashing import check_algorithm
    from .._security.whitelist import load_whitelist

    check_algorithm(security.hash_algorithm, where="security.hash_algorithm")
    if security.whitelist_file:
        load_whitelist(security.whitelist_file, default_algorithm=security.hash_algorithm)


def _report(file: Path, config: ManagerConfig | None, error: PluginError | None, as_json: bool, status: int) -> None:
    if as_json:
        data: dict[str, Any] = {"file": str(file), "ok": error is None}
        if config is not None:
            data["plugins"] = len(config.plugins)
        if error is not None:
            data["error"] = error_data(error)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif error is not None:
        click.echo(f"plugwire: {describe_error(error)}", err=True)
    elif config is not None:
        count = len(config.plugins)
        click.echo(f"ok: {file} ({count} plugin{'' if count == 1 else 's'})")
    raise SystemExit(status)


@config_group.command("show")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@JSON_OPTION
def show_command(file: Path, as_json: bool) -> None:
    """Print the effective config of FILE: every default filled in, paths made absolute,
    secrets shown as *** (YAML, or JSON with --json).

    Secrets are the auth fields declared as such (api_key, token, password) and the values of
    `env` and `metadata` whose name looks like a credential (*KEY*, *TOKEN*, *SECRET*,
    *PASSW*, ...). Exit status: 0 shown, 2 the file cannot be read or is invalid.
    """
    config = load_config(file)
    data = redacted(config)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    import yaml

    click.echo(f"# {file}: the effective config (defaults filled in, secrets shown as {REDACTED})")
    click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100), nl=False)


def redacted(config: ManagerConfig) -> dict[str, Any]:
    """`config.to_dict()` as JSON-ready data, with every secret replaced by `REDACTED` (empty
    ones stay empty)."""
    data: dict[str, Any] = json.loads(msgspec.json.encode(config))
    return _redact(data, type(config))


def _redact(data: dict[str, Any], struct: type[msgspec.Struct]) -> dict[str, Any]:
    hints = typing.get_type_hints(struct, include_extras=True)
    result: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        kind = secret_kind(hint)
        inner = _struct_in(hint)
        if kind is True:
            result[key] = REDACTED if value else value
        elif kind == "by-name":
            result[key] = {name: _by_name(name, text) for name, text in value.items()}
        elif inner is not None and isinstance(value, dict):
            result[key] = _redact(value, inner)
        elif inner is not None and isinstance(value, list | tuple):
            result[key] = [_redact(item, inner) for item in value]
        else:
            result[key] = value
    return result


def _by_name(name: str, value: str) -> str:
    return REDACTED if value and SECRET_NAME.search(name) else value


def _struct_in(hint: Any) -> type[msgspec.Struct] | None:
    """The Struct a field holds, directly or as `tuple[Struct, ...]`."""
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return hint
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args and isinstance(args[0], type) and issubclass(args[0], msgspec.Struct):
        return args[0]
    return None
