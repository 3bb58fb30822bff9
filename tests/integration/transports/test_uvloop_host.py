"""A host whose own event loop is uvloop runs subprocess plugins like one on asyncio's loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.procguard import PLUGINS, SRC

pytest.importorskip("uvloop", reason="the uvloop extra is not installed")
pytestmark = pytest.mark.usefixtures("no_leaks")

HOST = textwrap.dedent(
    """
    import sys
    import msgspec
    import uvloop
    import plugwire

    class Req(msgspec.Struct):
        op: str = "echo"
        text: str = ""

    class Resp(msgspec.Struct):
        text: str
        pid: int = 0

    async def main() -> None:
        source = plugwire.subprocess(sys.executable, sys.argv[1], env={"PYTHONPATH": sys.argv[2]})
        async with plugwire.AsyncPluginManager(Req, Resp) as manager:
            await manager.register(source, name="echo")
            answer = await manager.execute("echo", Req(text="from a uvloop host"))
            status = (await manager.health())["echo"].status.value
            print(type(__import__("asyncio").get_running_loop()).__module__, answer.text, status)

    uvloop.run(main())
    """
)


def test_a_host_on_uvloop_starts_calls_and_checks_a_subprocess_plugin() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", HOST, str(PLUGINS / "echo_plugin.py"), str(SRC)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["uvloop", "from", "a", "uvloop", "host", "healthy"]
    assert "Traceback" not in result.stderr
