"""A short smoke run for a free-threaded interpreter (`python3.13t`), from `make test`.

The full suite needs extension packages (grpcio, uvloop) that may have no free-threaded build
yet; this checks what plugwire itself promises there: it imports, and a host calls a plugin
process (the same interpreter running tests/support/plugins/echo_plugin.py) and gets its answer.
"""

from __future__ import annotations

import asyncio
import os
import sys
import sysconfig
from pathlib import Path

import plugwire

ROOT = Path(__file__).resolve().parents[1]
ECHO = ROOT / "tests" / "support" / "plugins" / "echo_plugin.py"


async def call_once() -> str:
    sys.path.insert(0, str(ECHO.parent))  # the plugin's own message types, as its host would import them
    from echo_plugin import Req, Resp  # type: ignore[import-not-found]

    env = {"PYTHONPATH": str(ROOT / "src")}
    async with plugwire.AsyncPluginManager(Req, Resp) as manager:
        await manager.register(plugwire.subprocess(sys.executable, str(ECHO), env=env), name="echo")
        answer = await manager.execute("echo", Req(text="free-threaded"))
    assert answer.pid != os.getpid(), "the answer did not come from the plugin process"
    text: str = answer.text
    return text


def main() -> int:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    built_free = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    print(f"  {sys.version.split()[0]} free-threaded build: {built_free}, GIL enabled now: {gil}")
    text = asyncio.run(call_once())
    assert text == "free-threaded", text
    print(f"  plugwire {plugwire.__version__}: import and one subprocess plugin call OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
