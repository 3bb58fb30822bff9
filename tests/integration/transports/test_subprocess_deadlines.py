"""The subprocess transport enforces each attempt's timeout itself (one timer per connection)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest

import plugwire
from plugwire._transports._connection import HostConnection
from plugwire._transports.base import Call
from plugwire._transports.subprocess import SubprocessTransport
from tests.support.procguard import eventually, python_plugin

pytestmark = pytest.mark.usefixtures("no_leaks")


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


@asynccontextmanager
async def echo_transport() -> AsyncIterator[SubprocessTransport]:
    source = python_plugin("echo_plugin.py")
    config = source.configure("echo", plugwire.PluginConfig(name="echo"))
    transport = source.create_transport(config, Req)
    assert isinstance(transport, SubprocessTransport)
    async with transport:
        yield transport


def call(request: Req, *, timeout: float | None = None, attempt: int = 1, request_id: str = "r") -> Call:
    return Call(
        plugin="echo",
        payload=msgspec.msgpack.encode(request),
        context=plugwire.ExecutionContext(request_id=request_id),
        timeout=timeout,
        attempt=attempt,
    )


def connection(transport: SubprocessTransport) -> HostConnection:
    assert transport.pool is not None
    return transport.pool.workers[0].conn


async def test_an_attempt_past_its_timeout_fails_with_1204_and_is_cancelled_in_the_plugin(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="plugwire.plugin.echo")
    assert SubprocessTransport.enforces_timeout
    async with echo_transport() as transport:
        slow = call(Req(op="sleep", seconds=30), timeout=0.1, attempt=2, request_id="slow-7")
        with pytest.raises(plugwire.PluginTimeoutError) as caught:
            await transport.call(slow)
        assert caught.value.code == 1204
        assert caught.value.plugin == "echo"
        assert caught.value.details == {"timeout": 0.1, "attempt": 2}
        assert "no answer within 0.1s" in str(caught.value)
        assert connection(transport).inflight == 0
        await eventually(lambda: any("cancelled (request slow-7)" in r.getMessage() for r in caplog.records))
        answer = msgspec.msgpack.decode(await transport.call(call(Req(text="after"), timeout=5)))
        assert answer["text"] == "after"


async def test_each_call_expires_at_its_own_deadline_whatever_the_order_they_were_sent() -> None:
    async with echo_transport() as transport:
        long = asyncio.create_task(transport.call(call(Req(op="sleep", seconds=30), timeout=1.0)))
        short = asyncio.create_task(transport.call(call(Req(op="sleep", seconds=30), timeout=0.05)))
        untimed = asyncio.create_task(transport.call(call(Req(op="sleep", seconds=0.2))))
        done, _ = await asyncio.wait({long, short, untimed}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {short}
        assert isinstance(short.exception(), plugwire.PluginTimeoutError)
        done, _ = await asyncio.wait({long, untimed}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {untimed}
        assert msgspec.msgpack.decode(untimed.result())["text"] == ""
        with pytest.raises(plugwire.PluginTimeoutError) as caught:
            await long
        assert caught.value.details["timeout"] == 1.0


async def test_answered_calls_leave_no_growing_pile_of_deadlines() -> None:
    async with echo_transport() as transport:
        for i in range(300):
            await transport.call(call(Req(text=str(i)), timeout=30))
        conn = connection(transport)
        assert len(conn._deadlines) <= 65
        assert conn.inflight == 0


async def test_a_connection_that_breaks_drops_its_deadline_timer() -> None:
    async with echo_transport() as transport:
        conn = connection(transport)
        pending = asyncio.create_task(transport.call(call(Req(op="sleep", seconds=30), timeout=30)))
        await eventually(lambda: conn.inflight == 1)
        assert len(conn._deadlines) == 1
        conn.close(plugwire.TransportError("closed by the test", plugin="echo"))
        with pytest.raises(plugwire.PluginError):
            await pending
        assert not conn._deadlines.armed
        assert len(conn._deadlines) == 0
