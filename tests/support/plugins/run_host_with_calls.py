"""`plugwire run`'s host with calls in flight when it is told to stop.

`plugwire run` makes no calls of its own, so this script runs what the command runs
(`run_host`, with the same logging) and, once the host is ready, starts three calls to the
plugin "gate" (tests/support/plugins/cli_plugin.py), which wait at its gate. Each call's
outcome is printed when it ends; the exit status is `run_host`'s.

Usage: run_host_with_calls.py CONFIG
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from plugwire._cli._common import load_config
from plugwire._cli._host import configure_logging
from plugwire._cli._run import run_host
from plugwire.errors import PluginError

CALLS = 3


async def call(manager: Any, n: int) -> None:
    try:
        result = await manager.execute("gate", {"gate": True, "n": n})
    except PluginError as exc:
        print(f"call {n} failed: [{exc.code}] {exc.message}", flush=True)
    else:
        print(f"call {n} answered: {json.dumps(result, sort_keys=True)}", flush=True)


def main() -> None:
    config = load_config(sys.argv[1])
    configure_logging(config.log_level)
    calls: list[asyncio.Task[None]] = []

    def ready(manager: Any) -> None:
        calls.extend(asyncio.create_task(call(manager, n)) for n in range(CALLS))
        print(f"ready: {CALLS} calls started", flush=True)

    raise SystemExit(run_host(config, on_ready=ready))


if __name__ == "__main__":
    main()
