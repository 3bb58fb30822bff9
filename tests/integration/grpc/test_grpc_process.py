"""gRPC plugins in their own processes: killed mid-call, restarted, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import plugwire
from plugwire import AsyncPluginManager, ExecutionContext
from plugwire._proto import load
from tests.support.grpc_support import Answer, Ask, short_socket_path

SCRIPT = Path(__file__).resolve().parents[2] / "support" / "plugins" / "grpc_echo.py"
Manager = AsyncPluginManager[Ask, Answer]
MODS = load()


class PluginProcess:
    """One `grpc_echo.py` process, with its stderr read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.address = ""

    async def expect(self, text: str) -> str:
        assert self.proc.stderr is not None
        while True:
            line = (await asyncio.wait_for(self.proc.stderr.readline(), 20)).decode()
            if not line:
                raise AssertionError(f"the plugin exited before printing {text!r}")
            if text in line:
                return line


Launcher = Callable[..., Awaitable[PluginProcess]]


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launcher]:
    started: list[PluginProcess] = []

    async def start(address: str, *args: str, **env: str) -> PluginProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            address,
            *args,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        )
        plugin = PluginProcess(proc)
        started.append(plugin)
        line = await plugin.expect("over gRPC on")
        plugin.address = line.rsplit(" on ", 1)[1].strip()
        return plugin

    yield start
    for plugin in started:
        if plugin.proc.returncode is None:
            plugin.proc.kill()
        await plugin.proc.wait()


async def test_serve_grpc_announces_the_real_port_it_listens_on(launch: Launcher) -> None:
    plugin = await launch("127.0.0.1:0")
    host, port = plugin.address.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0
    async with AsyncPluginManager(Ask, Answer) as manager:
        await manager.register(plugwire.grpc(plugin.address), name="p")
        assert (await manager.execute("p", Ask(text="hi"))).server == f"echo-{plugin.proc.pid}"


async def test_serve_with_the_grpc_transport_serves_until_sigterm_then_exits_0(
    launch: Launcher, tmp_path: Path
) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    plugin = await launch(address, "serve")
    async with AsyncPluginManager(Ask, Answer) as manager:
        await manager.register(plugwire.grpc(address), name="p")
        assert (await manager.execute("p", Ask(text="via serve"))).text == "via serve"
    plugin.proc.terminate()
    assert await asyncio.wait_for(plugin.proc.wait(), 20) == 0


def test_serve_with_the_grpc_transport_needs_an_address() -> None:
    with pytest.raises(plugwire.ConfigError) as caught:
        plugwire.serve(object(), transport="grpc")
    assert caught.value.code == plugwire.errors.ErrorCode.CONFIG_MISSING_ENDPOINT


async def test_a_plugin_killed_mid_call_fails_the_call_with_a_retryable_coded_error(
    launch: Launcher, tmp_path: Path
) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    plugin = await launch(address)
    async with AsyncPluginManager(Ask, Answer) as manager:
        await manager.register(plugwire.grpc(address), name="p")
        call = asyncio.ensure_future(manager.execute("p", Ask(mode="hang"), ExecutionContext(timeout=20)))
        await plugin.expect("call started")
        plugin.proc.kill()
        with pytest.raises(plugwire.PluginError) as caught:
            await call
    # The request reached the plugin, so whether its work happened is unknown: retried only
    # when the call is idempotent.
    assert isinstance(caught.value, plugwire.OutcomeUnknownError)
    assert caught.value.retryable
    assert caught.value.plugin == "p"


async def test_calls_resume_after_the_plugin_restarts_without_a_new_manager(launch: Launcher, tmp_path: Path) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    first = await launch(address)
    async with AsyncPluginManager(Ask, Answer) as manager:
        await manager.register(plugwire.grpc(address), name="p")
        before = (await manager.execute("p", Ask(text="one"))).server
        first.proc.send_signal(signal.SIGTERM)
        assert await first.proc.wait() == 0

        with pytest.raises(plugwire.PluginError) as caught:
            await manager.execute("p", Ask(text="while down"))
        assert caught.value.retryable

        second = await launch(address)
        after = await _first_success(manager)
    assert before == f"echo-{first.proc.pid}"
    assert after == f"echo-{second.proc.pid}"


async def _first_success(manager: Manager) -> str:
    """grpc reconnects on its own backoff (at most 2 s here); poll until a call gets through."""
    for _ in range(100):
        try:
            return (await manager.execute("p", Ask(text="again"))).server
        except plugwire.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("calls did not resume after the plugin restarted")


async def test_sigterm_finishes_in_flight_calls_then_closes_the_plugin(launch: Launcher, tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    address = f"unix:{short_socket_path(tmp_path)}"
    plugin = await launch(address, PLUGWIRE_TEST_CLOSE_MARKER=str(marker))
    async with AsyncPluginManager(Ask, Answer) as manager:
        await manager.register(plugwire.grpc(address), name="p")
        call = asyncio.ensure_future(manager.execute("p", Ask(text="finish me", mode="linger")))
        await plugin.expect("call started")
        plugin.proc.send_signal(signal.SIGTERM)
        answer = await call
        assert await plugin.proc.wait() == 0
    assert answer.text == "finish me"
    assert marker.read_text() == "closed"


async def test_a_call_cut_off_at_the_end_of_the_grace_ends_with_1207_and_no_traceback(
    launch: Launcher, tmp_path: Path
) -> None:
    address = f"unix:{short_socket_path(tmp_path)}"
    plugin = await launch(address, "serve", PLUGWIRE_TEST_GRACE="0")
    request = MODS.pb2.ExecuteRequest(payload=plugwire.sdk.TypedCodec(Ask).encode(Ask(mode="hang")))
    async with grpc.aio.insecure_channel(address) as channel:
        call = asyncio.ensure_future(MODS.pb2_grpc.PluginStub(channel).Execute(request, timeout=30))
        await plugin.expect("call started")
        plugin.proc.send_signal(signal.SIGTERM)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
    assert await asyncio.wait_for(plugin.proc.wait(), 20) == 0
    assert plugin.proc.stderr is not None
    rest = (await plugin.proc.stderr.read()).decode()
    assert "Traceback" not in rest
    assert "CancelledError" not in rest
    # The host learns the exact code: the work may have happened (outcome unknown).
    assert ("plugwire-code", str(plugwire.errors.ErrorCode.OUTCOME_UNKNOWN)) in tuple(
        caught.value.trailing_metadata() or ()
    )


async def test_sigterm_turns_health_not_serving_while_a_call_in_flight_finishes(
    launch: Launcher, tmp_path: Path
) -> None:
    """What a Kubernetes gRPC probe sees of `serve(transport="grpc")` stopping with a call in flight."""
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    gate = os.open(fifo, os.O_RDWR)  # our end stays open: the plugin's read waits for a byte, not a writer
    address = f"unix:{short_socket_path(tmp_path)}"
    plugin = await launch(address, "serve")
    try:
        async with AsyncPluginManager(Ask, Answer) as manager:
            await manager.register(plugwire.grpc(address), name="p")
            call = asyncio.ensure_future(manager.execute("p", Ask(text=str(fifo), mode="gated")))
            await plugin.expect("call started")
            assert await probe(address) == health_pb2.HealthCheckResponse.SERVING
            plugin.proc.send_signal(signal.SIGTERM)
            line = await plugin.expect("plugwire: stopping")
            assert "1 call in flight, grace 5s" in line  # the documented grace
            assert await probe(address) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not call.done()
            os.write(gate, b"x")  # the call's work ends within the grace
            answer = await call
    finally:
        os.close(gate)
    assert answer.text == str(fifo)
    assert await asyncio.wait_for(plugin.proc.wait(), 20) == 0
    assert plugin.proc.stderr is not None
    assert "Traceback" not in (await plugin.proc.stderr.read()).decode()


async def probe(address: str) -> int:
    """One `grpc.health.v1.Health/Check` on a fresh connection, as a Kubernetes probe makes it."""
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return int(answer.status)
