"""The `plugwire` command group: each command is imported only when it runs (or `-h` lists it)."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

__all__ = ["COMMANDS", "cli"]

# Command name -> "module:attribute" inside this package. A command's module is imported when
# the command runs, or when `plugwire -h` lists it, so `plugwire hash` never loads grpcio.
COMMANDS: dict[str, str] = {
    "audit": "._security:audit_group",
    "bench": "._bench:bench_command",
    "call": "._call:call_command",
    "check": "._check:check_command",
    "config": "._config:config_group",
    "hash": "._security:hash_command",
    "health": "._inspect:health_command",
    "list": "._inspect:list_command",
    "new": "._new:new_command",
    "proto": "._proto:proto_command",
    "run": "._run:run_command",
    "top": "._top:top_command",
    "whitelist": "._security:whitelist_group",
}

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _present(target: str) -> bool:
    module = target.partition(":")[0]
    return importlib.util.find_spec(module, __package__) is not None


class _LazyGroup(click.Group):
    """A group whose commands come from `COMMANDS`, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in COMMANDS.items() if _present(target))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _present(target):
            return None
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name, __package__), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wiring mistake
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=_LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="plugwire", message="%(prog)s %(version)s")
def cli() -> None:
    """plugwire: typed, out-of-process plugins.

    Run a host from a config file, call and benchmark plugins, check that a plugin speaks the
    protocol, pin plugins by hash and read the audit log. Every command takes -h; most take
    --json for scripts. Exit status: 0 ok, 1 the check or call failed, 2 usage or setup error.
    """
