"""`PLUGWIRE_FAST_PATHS`: the host picks its strategies from it, and passes it to its plugins."""

from __future__ import annotations

import sys

import msgspec

import plugwire
from plugwire._transports._connection import HostConnection
from tests.support.procguard import PLUGINS, SRC, manager_for
from tests.support.standin_transport import RecordingTransport


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


class Resp(msgspec.Struct):
    text: str
    pid: int = 0


async def test_a_connection_takes_the_plain_strategies_when_the_accelerators_are_off(fast_paths: bool) -> None:
    conn = HostConnection("p")
    conn.connection_made(RecordingTransport())
    assert conn.session.batching is fast_paths  # the batching rule of `_protocol/session.py`
    assert conn._wakeups.enabled is fast_paths
    assert (conn.loop_time != conn._loop.time) is fast_paths  # the loop's own method when plain


async def test_the_switch_reaches_the_plugin_through_the_scrubbed_environment(fast_paths: bool) -> None:
    async with manager_for(Req, Resp) as manager:
        # (the plugin's configured env does not carry it: the host passes its own on)
        source = plugwire.subprocess(sys.executable, str(PLUGINS / "echo_plugin.py"), env={"PYTHONPATH": str(SRC)})
        await manager.register(source, config=plugwire.PluginConfig(name="echo"))
        answer = await manager.execute("echo", Req(op="env", text="PLUGWIRE_FAST_PATHS"))
    assert answer.text == ("1" if fast_paths else "0")
