"""`plugwire call`: one call to one plugin, from a config file or a command, the answer as JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NoReturn

import click
from msgspec.structs import replace

from .._config import ManagerConfig, did_you_mean
from .._errors import PluginError, PluginNotFoundError
from .._models import ExecutionContext
from ._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    POSITIVE_FLOAT,
    error_data,
    fail,
    load_config,
    print_json,
    read_data,
)

__all__ = ["call_command"]

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)


@click.command(
    "call",
    context_settings={"ignore_unknown_options": True},
    short_help="Call one plugin once; print its answer as JSON.",
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED, metavar="CONFIG NAME | --exec COMMAND...")
@click.option(
    "--exec",
    "exec_mode",
    is_flag=True,
    help="Start COMMAND as the plugin instead of reading a config file (put -- before a COMMAND with options).",
)
@click.option(
    "--data",
    default="{}",
    show_default=True,
    metavar="JSON|@FILE|-",
    help="The request: JSON, @file to read it from a file, - to read it from stdin.",
)
@click.option(
    "--timeout",
    type=POSITIVE_FLOAT,
    default=None,
    metavar="SECONDS",
    help="Seconds the call may take, retries included (default: the plugin's request_timeout per attempt).",
)
@click.option(
    "--log-level", default="warning", show_default=True, type=LOG_LEVELS, help="plugwire's log records on stderr."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='On an error, print it as {"error": {...}} on stdout (the answer is JSON anyway).',
)
def call_command(
    *, arguments: Sequence[str], exec_mode: bool, data: str, timeout: float | None, log_level: str, as_json: bool
) -> None:
    """Call plugin NAME of CONFIG once with the request --data; print its response as JSON.

    \b
      plugwire call plugins.yaml stats --data '{"text": "One. Two."}'
      plugwire call --exec --data @request.json -- python3 -u my_plugin.py

    Only plugin NAME is started (with the config's security and its own settings), and
    stopped once it answered. With --exec, COMMAND is started as a plugin named "plugin".

    Exit status: 0 the call answered; 1 the call failed (its error and code on stderr, or as
    {"error": {...}} on stdout with --json); 2 usage or setup error (bad arguments or data, an
    invalid config, no plugin NAME, a plugin that cannot start).
    """
    from ._host import configure_logging, exec_config

    if exec_mode and not arguments:
        raise click.UsageError("--exec needs the COMMAND that starts the plugin")
    if not exec_mode:
        _check_arguments(arguments)
    request = read_data(data)  # before anything starts: bad data is a usage error
    context = ExecutionContext(total_timeout=timeout)
    try:
        config, name = (exec_config(arguments), "plugin") if exec_mode else _config_for(*arguments)
        config = replace(config, log_level=log_level.lower())  # the manager sets plugwire's level from it
        configure_logging(log_level)
        response = asyncio.run(_call(config, name, request, context))
    except _CallFailed as failed:
        _fail(failed.error, EXIT_FAILED, as_json)
    except PluginError as exc:  # nothing was called: no such plugin, a host that cannot be built
        _fail(exc, EXIT_USAGE, as_json)
    print_json(response)


class _CallFailed(Exception):
    """The call itself failed with `error` (as opposed to the host around it)."""

    def __init__(self, error: PluginError) -> None:
        super().__init__(str(error))
        self.error = error


def _fail(error: PluginError, status: int, as_json: bool) -> NoReturn:
    if as_json:
        print_json({"error": error_data(error)})
        raise SystemExit(status)
    fail(error, status)


def _check_arguments(arguments: Sequence[str]) -> None:
    options = [a for a in arguments if a.startswith("-") and a != "-"]
    if options:  # `ignore_unknown_options` let it through for --exec; here it is a typo
        raise click.NoSuchOption(options[0])
    if len(arguments) != 2:
        raise click.UsageError(f"expected CONFIG NAME (or --exec COMMAND...), got {len(arguments)} argument(s)")


def _config_for(path: str, name: str) -> tuple[ManagerConfig, str]:
    """The config to start for `CONFIG NAME`: NAME alone when the file lists it, and never
    the long-running parts (hot reload, the metrics endpoint, discovery's watching).

    Raises:
        PluginNotFoundError: The file lists no plugin NAME and discovers none (1201).
    """
    config = load_config(path)
    listed = [p for p in config.plugins if p.name == name]
    if not listed and not config.discovery.enabled:
        raise _not_found(name, [p.name for p in config.plugins], path)
    metrics = replace(config.metrics, prometheus=replace(config.metrics.prometheus, enabled=False))
    one = replace(
        config,
        plugins=tuple(listed),
        metrics=metrics,
        hot_reload=replace(config.hot_reload, enabled=False),
        discovery=replace(config.discovery, enabled=config.discovery.enabled and not listed, watch=False),
    )
    return one, name


def _not_found(name: str, known: Sequence[str], where: str) -> PluginNotFoundError:
    names = ", ".join(sorted(known)) or "none"
    return PluginNotFoundError(
        f"no plugin named {name!r} in {where}{did_you_mean(name, known)} (plugins: {names})", plugin=name
    )


async def _call(config: ManagerConfig, name: str, request: Any, context: ExecutionContext) -> Any:
    from ._host import open_host

    async with open_host(config) as manager:
        if name not in manager:  # discovery did not find it
            raise _not_found(name, list(manager.list_plugins()), "the plugins discovered")
        try:
            return await manager.execute(name, request, context)
        except PluginError as exc:
            raise _CallFailed(exc) from exc
