"""`plugwire run CONFIG`: a host in the foreground until SIGTERM or SIGINT, then a graceful stop.

The first signal drains: the manager's `shutdown()` waits up to the config's
`shutdown_timeout` for calls in flight, then every plugin gets the `shutdown` frame and its
`close()` runs; the command exits 0 (1 when calls had to be cut). A second signal stops at
once (exit 128 + its number): the plugin processes die with the host (parent-death signal).
Unlike `plugwire.run`, which exits 143 after SIGTERM as a shell reports a process that signal
ended, a host stopped as asked exits 0, as container runtimes and supervisors expect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from msgspec.structs import replace

from .._config import ManagerConfig
from .._errors import PluginError
from ._common import EXIT_FAILED, EXIT_OK, fail, load_config

if TYPE_CHECKING:
    from .._lifecycle import ShutdownReport
    from .._manager import AsyncPluginManager

__all__ = ["run_command", "run_host", "watched"]

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_log = logging.getLogger("plugwire.cli")

#: Told when the host has started (every plugin registered, the metrics endpoint serving).
OnReady = Callable[["AsyncPluginManager[Any, Any]"], None]


@click.command("run", short_help="Run a host from a config file until SIGTERM or Ctrl-C.")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--watch",
    is_flag=True,
    help="Reload CONFIG when it changes (as hot_reload: {enabled: true, file: CONFIG}).",
)
@click.option(
    "--log-level",
    type=LOG_LEVELS,
    default=None,
    help="plugwire's log records on stderr, plugins' included  [default: the config's log_level, info]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the ready and stopped lines as JSON objects.")
def run_command(config_path: str, watch: bool, log_level: str | None, as_json: bool) -> None:
    """Run a host for CONFIG in the foreground: start its plugins, serve its metrics endpoint
    (metrics.prometheus), reload on changes (hot_reload, or --watch), log to stderr.

    Prints one line on stdout when ready (with --json, a JSON object) and one when stopped.
    SIGTERM or Ctrl-C stops it gracefully: calls in flight get the config's shutdown_timeout,
    then every plugin is closed. A second signal stops at once.

    Exit status: 0 stopped after draining; 1 calls were still running at shutdown_timeout and
    were cut; 2 the host could not start (invalid CONFIG, a plugin that cannot start, the
    metrics port in use); 128+N stopped at once by a second signal N.
    """
    config = load_config(config_path)
    if watch:
        config = watched(config, config_path)
    if log_level is not None:  # the manager sets plugwire's level from the config's
        config = replace(config, log_level=log_level.lower())
    from ._host import configure_logging

    configure_logging(config.log_level)
    raise SystemExit(run_host(config, on_ready=lambda manager: _print_ready(manager, config, as_json), as_json=as_json))


def watched(config: ManagerConfig, path: str | os.PathLike[str]) -> ManagerConfig:
    """`config` set to reload from its own file `path` on every change (`--watch`)."""
    hot = replace(config.hot_reload, enabled=True, file=str(Path(path).resolve()))
    return replace(config, hot_reload=hot)


def run_host(config: ManagerConfig, *, on_ready: OnReady, as_json: bool = False) -> int:
    """Start a host for `config`, call `on_ready(manager)`, serve until SIGTERM or SIGINT,
    then shut down gracefully; the exit status (see `run_command`).

    A host that cannot start prints its coded error and exits 2. Signals are handled only
    when called from the main thread.
    """
    return asyncio.run(_serve(config, on_ready, as_json))


async def _serve(config: ManagerConfig, on_ready: OnReady, as_json: bool) -> int:
    from .._manager import AsyncPluginManager

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = _install(loop, stop, config.shutdown_timeout)
    try:
        try:
            manager: AsyncPluginManager[Any, Any] = AsyncPluginManager(Any, Any, config)
        except PluginError as exc:  # e.g. the prometheus or otel extra is missing
            fail(exc)
        try:
            await manager.start()
        except PluginError as exc:
            await manager.shutdown()
            fail(exc)
        if not stop.is_set():
            on_ready(manager)
            await stop.wait()
        report = await manager.shutdown()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    _print_stopped(report, as_json)
    return EXIT_OK if report.drained else EXIT_FAILED


def _install(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, drain: float) -> list[int]:
    """The first stop signal sets `stop`; a second one ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        return []

    def handle(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            _log.warning("%s again: stopping now, without waiting for calls or plugins", name)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(128 + signum)  # the plugin processes die with us (parent-death signal)
        _log.warning(
            "%s: stopping: waiting up to %gs for calls in flight, then closing the plugins "
            "(send it again to stop at once)",
            name,
            drain,
        )
        stop.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, handle, sig)
    return list(STOP_SIGNALS)


def _print_ready(manager: AsyncPluginManager[Any, Any], config: ManagerConfig, as_json: bool) -> None:
    plugins = {name: status.status.value for name, status in sorted(manager.list_plugins().items())}
    watching = config.hot_reload.file if config.hot_reload.enabled else None
    if as_json:
        data = {"event": "ready", "pid": os.getpid(), "plugins": plugins, "metrics_url": manager.metrics_url}
        click.echo(json.dumps({**data, "watching": watching}))
        return
    count = f"{len(plugins)} plugin{'' if len(plugins) == 1 else 's'}"
    names = [name if status == "healthy" else f"{name} {status}" for name, status in plugins.items()]
    parts = [f"{count} ({', '.join(names)})" if plugins else count]
    if manager.metrics_url:
        parts.append(f"metrics at {manager.metrics_url}")
    if watching:
        parts.append(f"reloading on changes to {watching}")
    click.echo(f"plugwire run: ready: {'; '.join(parts)}; stop with SIGTERM or Ctrl-C")


def _print_stopped(report: ShutdownReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"event": "stopped", "plugins": report.plugins, "cut": report.cut}))
        return
    closed = f"{report.plugins} plugin{'' if report.plugins == 1 else 's'} closed"
    if report.drained:
        click.echo(f"plugwire run: stopped: {closed}, no call cut")
    else:
        cut = ", ".join(f"{name}: {count}" for name, count in sorted(report.cut.items()))
        click.echo(f"plugwire run: stopped: {closed}; calls cut at shutdown_timeout ({cut})")
