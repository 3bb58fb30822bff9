"""Bad input and faults, each with a real misbehaving child process (tests/support/plugins/raw_plugin.py
speaks the protocol by hand). Every test also checks that no process or fd is leaked."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import msgspec
import pytest

import plugwire
from plugwire._transports._pool import PoolState, RestartPolicy
from plugwire._transports.subprocess import SubprocessOptions, SubprocessTransport
from tests.support.echo_types import Req, Resp
from tests.support.procguard import PLUGINS, eventually, manager_for, pid_alive, plugin_env, python_plugin, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("no_leaks")]


FAST = SubprocessOptions(
    grace=0.5, kill_after=0.5, write_timeout=0.5, restart=RestartPolicy(initial_backoff=0.01, max_backoff=0.05)
)


def config(name: str = "raw", *, start_timeout: float = 10.0, request_timeout: float = 30.0) -> plugwire.PluginConfig:
    # The transport is under test: no breaker or retry policy in the way of what it reports.
    return plugwire.PluginConfig(
        name=name,
        circuit_breaker=plugwire.CircuitBreakerConfig(enabled=False),
        retry=plugwire.RetryConfig(max_retries=0),
        connection=plugwire.ConnectionConfig(
            max_connections=1, connection_timeout=start_timeout, request_timeout=request_timeout
        ),
    )


def raw(mode: str, options: SubprocessOptions = FAST, **env: str) -> object:
    return python_plugin("raw_plugin.py", mode, options=options, **env)


def transport_of(manager: plugwire.AsyncPluginManager[Req, Resp], name: str = "raw") -> SubprocessTransport:
    transport = manager._entries[name].transport
    assert isinstance(transport, SubprocessTransport)
    assert transport.pool is not None
    return transport


async def wait_for_restart(transport: SubprocessTransport, old_pid: int) -> None:
    pool = transport.pool
    assert pool is not None
    await pool.wait_for(lambda: bool(pool.workers) and pool.workers[0].process.pid != old_pid)


# ------------------------------------------------------------------- handshake faults
async def test_junk_on_stdout_before_the_handshake_is_reported_with_the_bytes() -> None:
    async with manager_for(Req, Resp) as manager:
        with pytest.raises(plugwire.errors.ProtocolError) as caught:
            await manager.register(raw("junk"), config=config())
    assert caught.value.code == plugwire.errors.ErrorCode.HANDSHAKE_JUNK
    assert "Starting raw plugin" in str(caught.value)


async def test_no_handshake_within_the_start_timeout_fails_the_start() -> None:
    async with manager_for(Req, Resp) as manager:
        with pytest.raises(plugwire.errors.ProcessError) as caught:
            await manager.register(raw("silent"), config=config(start_timeout=0.3))
    assert caught.value.code == plugwire.errors.ErrorCode.PROCESS_START_TIMEOUT
    assert "received nothing" in str(caught.value)


async def test_a_plugin_that_sees_a_wrong_magic_cookie_exits_and_the_start_reports_why() -> None:
    # A wrapper overrides the cookie the host set, as a mismatched host would.
    script = f"PLUGWIRE_MAGIC_COOKIE=wrong exec {sys.executable} {PLUGINS / 'echo_plugin.py'}"
    source = plugwire.subprocess("/bin/sh", "-c", script, env=plugin_env(), options=FAST)
    async with manager_for(Req, Resp) as manager:
        with pytest.raises(plugwire.errors.ProcessError) as caught:
            await manager.register(source, config=config())
    assert caught.value.code == plugwire.errors.ErrorCode.PROCESS_EXITED_DURING_START
    assert "exit status 1" in str(caught.value)
    assert "not meant to be run by hand" in str(caught.value)


async def test_no_common_protocol_version_fails_the_start_either_way() -> None:
    async with manager_for(Req, Resp) as manager:
        with pytest.raises(plugwire.errors.ProtocolError) as refused:
            await manager.register(raw("refuse-version"), config=config())
        with pytest.raises(plugwire.errors.ProtocolError) as unknown:
            await manager.register(raw("version2"), config=config())
    assert refused.value.code == plugwire.errors.ErrorCode.NO_COMMON_VERSION
    assert "protocol 7" in refused.value.message
    assert unknown.value.code == plugwire.errors.ErrorCode.NO_COMMON_VERSION


# ------------------------------------------------------------------- stream faults
async def test_an_oversized_frame_length_is_refused_before_allocating() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("oversize"), config=config())
        transport = transport_of(manager)
        conn = transport.pool.workers[0].conn  # type: ignore[union-attr]
        capacity = conn.capacity
        with pytest.raises(plugwire.OutcomeUnknownError) as caught:
            await manager.execute("raw", Req(text="x"))
        cause = caught.value.__cause__
        assert isinstance(cause, plugwire.errors.ProtocolError)
        assert cause.code == plugwire.errors.ErrorCode.FRAME_TOO_LARGE
        assert conn.capacity == capacity  # nothing was allocated for the 2 GiB frame


async def test_half_a_frame_then_eof_fails_the_call_as_truncated() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("half-eof"), config=config())
        with pytest.raises(plugwire.OutcomeUnknownError) as caught:
            await manager.execute("raw", Req(text="x"))
    assert isinstance(caught.value.__cause__, plugwire.errors.ProtocolError)
    assert caught.value.__cause__.code == plugwire.errors.ErrorCode.FRAME_TRUNCATED


async def test_half_a_frame_then_a_stall_breaks_the_connection_and_restarts_the_plugin(tmp_path: Path) -> None:
    state = tmp_path / "starts"
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("half-stall", RAW_PLUGIN_STATE=str(state)), config=config())
        transport = transport_of(manager)
        old_pid = transport.pool.workers[0].process.pid  # type: ignore[union-attr]
        with pytest.raises(plugwire.OutcomeUnknownError) as caught:
            await manager.execute("raw", Req(text="x"))
        assert isinstance(caught.value.__cause__, plugwire.errors.ProtocolError)
        assert caught.value.__cause__.code == plugwire.errors.ErrorCode.FRAME_TRUNCATED
        assert "stopped in the middle of a frame" in caught.value.__cause__.message
        await wait_for_restart(transport, old_pid)
        assert not pid_alive(old_pid)


async def test_an_undecodable_envelope_fails_the_call_with_a_protocol_cause() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("bad-envelope"), config=config())
        with pytest.raises(plugwire.OutcomeUnknownError) as caught:
            await manager.execute("raw", Req(text="x"))
    assert isinstance(caught.value.__cause__, plugwire.errors.ProtocolError)
    assert caught.value.__cause__.code == plugwire.errors.ErrorCode.ENVELOPE_INVALID


async def test_replies_with_unknown_or_duplicate_ids_are_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="plugwire.transport.subprocess")
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("stray-ids"), config=config())
        answers = [await manager.execute("raw", Req(text=t)) for t in ("one", "two", "three")]
        assert [a.text for a in answers] == ["one", "two", "three"]
        transport = transport_of(manager)
        await transport.health()  # answered after every stray frame the plugin wrote before it
        conn = transport.pool.workers[0].conn  # type: ignore[union-attr]
        # For each call the plugin writes: an unknown id, the answer, a duplicate.
        assert conn.stray_replies == 6
    messages = [r.getMessage() for r in caplog.records]
    assert any("answered unknown id" in m for m in messages)
    assert any("answered duplicate id" in m for m in messages)


# ------------------------------------------------------------------- process faults
async def test_sigkill_with_32_calls_in_flight_fails_each_call_once_then_the_plugin_serves_again() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py", options=FAST), config=config("echo"))
        transport = transport_of(manager, "echo")
        pid = transport.pool.workers[0].process.pid  # type: ignore[union-attr]
        calls = [asyncio.ensure_future(manager.execute("echo", Req(op="sleep", seconds=30))) for _ in range(32)]
        await asyncio.sleep(0)  # each call runs up to awaiting its answer: all 32 are written
        assert transport.pool.workers[0].conn.inflight == 32  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert len(results) == 32
        assert all(isinstance(r, plugwire.OutcomeUnknownError) for r in results), results
        assert all(r.code == plugwire.errors.ErrorCode.OUTCOME_UNKNOWN for r in results)  # type: ignore[union-attr]
        answer = await manager.execute("echo", Req(text="back"))
        assert answer.text == "back"
        assert answer.pid != pid


async def test_a_plugin_that_exits_0_while_idle_is_restarted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="plugwire.transport.subprocess")
    state = tmp_path / "starts"
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("exit0-once", RAW_PLUGIN_STATE=str(state)), config=config())
        transport = transport_of(manager)
        old_pid = transport.pool.workers[0].process.pid  # type: ignore[union-attr]
        await wait_for_restart(transport, old_pid)  # it exited right after its handshake
        answer = await manager.execute("raw", Req(text="after restart"))
        assert answer.text == "after restart"
        assert transport.pool.restarts == 1  # type: ignore[union-attr]
    assert state.read_text() == "2"
    assert any("exit status 0" in r.getMessage() for r in caplog.records)


async def test_a_plugin_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("ignore-term", SubprocessOptions(grace=0.2, kill_after=0.2)), config=config())
        process = transport_of(manager).pool.workers[0].process  # type: ignore[union-attr]
    assert process.exited.result() == -signal.SIGKILL
    assert not pid_alive(process.pid)


async def test_a_grandchild_holding_stdout_does_not_hide_the_exit_and_the_group_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("fork-holder"), config=config())
        transport = transport_of(manager)
        old_pid = transport.pool.workers[0].process.pid  # type: ignore[union-attr]
        grandchild = int((await manager.execute("raw", Req(op="grandchild", text=str(marker)))).text)
        assert pid_alive(grandchild)
        with pytest.raises(plugwire.OutcomeUnknownError):
            await manager.execute("raw", Req(op="exit"))
        assert wait_until(lambda: not pid_alive(grandchild), timeout=5)
        await wait_for_restart(transport, old_pid)
        assert (await manager.execute("raw", Req(text="ok"))).text == "ok"


async def test_a_10_mb_stderr_burst_is_truncated_rate_limited_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plugwire.plugin.raw")
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("stderr-flood"), config=config())
        forwarder = transport_of(manager).pool.workers[0].process.stderr  # type: ignore[union-attr]
        assert (await manager.execute("raw", Req(text="still serving"))).text == "still serving"
        await eventually(lambda: bool(forwarder.tail) and forwarder.tail[-1] == "flood done")
        assert forwarder.peak_buffered <= forwarder.max_line
        assert len(forwarder.tail) <= 20
    records = [r.getMessage() for r in caplog.records if r.name == "plugwire.plugin.raw"]
    assert any(m.endswith("…[truncated 2088960 bytes]") and len(m) < 8300 for m in records)
    assert len(records) < 8 * 1024  # rate-limited, not one record per line


async def test_a_plugin_that_never_reads_stdin_times_out_writes_without_hurting_other_plugins() -> None:
    big = "x" * (900 * 1024)
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("no-read"), config=config())
        await manager.register(python_plugin("echo_plugin.py"), config=config("echo"))
        stuck = [asyncio.ensure_future(manager.execute("raw", Req(text=big))) for _ in range(8)]
        assert (await manager.execute("echo", Req(text="unaffected"))).text == "unaffected"
        results = await asyncio.gather(*stuck, return_exceptions=True)
        assert all(isinstance(r, (plugwire.TransportError, plugwire.OutcomeUnknownError)) for r in results), results
        write_timeouts = [r for r in results if isinstance(r, plugwire.TransportError)]
        assert write_timeouts
        assert all(r.code == plugwire.errors.ErrorCode.WRITE_TIMEOUT for r in write_timeouts)
        assert (await manager.execute("echo", Req(text="still fine"))).text == "still fine"


class RecordingClock:
    """Real monotonic time, but backoff sleeps are recorded and skipped."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        import time

        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


async def test_a_crash_loop_backs_off_then_goes_offline_and_calls_fail_fast(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plugwire.transport.subprocess")
    clock = RecordingClock()
    options = SubprocessOptions(
        grace=0.5,
        kill_after=0.5,
        clock=clock,
        restart=RestartPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0, max_restarts=3, window=60),
    )
    state = tmp_path / "starts"
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("crash-after-first", options, RAW_PLUGIN_STATE=str(state)), config=config())
        transport = transport_of(manager)
        pool = transport.pool
        assert pool is not None
        with pytest.raises(plugwire.OutcomeUnknownError):
            await manager.execute("raw", Req(op="exit"))
        await pool.wait_for(lambda: pool.state is PoolState.OFFLINE)
        assert clock.sleeps == [0.1, 0.2, 0.4]
        crash = next(r.getMessage() for r in caplog.records if "exited unexpectedly" in r.getMessage())
        assert "exit status 0" in crash
        assert "last stderr lines:\nexiting on request" in crash
        failures = [r.getMessage() for r in caplog.records if "restart failed" in r.getMessage()]
        assert len(failures) == 3
        assert "crashing on start 1" in failures[0]
        assert any("is offline" in r.getMessage() for r in caplog.records)
        with pytest.raises(plugwire.PluginUnavailableError) as caught:
            await manager.execute("raw", Req(text="x"))
        assert caught.value.code == plugwire.errors.ErrorCode.PLUGIN_OFFLINE
        assert (await manager.health())["raw"].status is plugwire.Status.OFFLINE
        # Re-registering brings it back.
        await manager.unregister("raw")
        state.unlink()
        await manager.register(raw("crash-after-first", options, RAW_PLUGIN_STATE=str(state)), config=config())
        assert (await manager.execute("raw", Req(text="back"))).text == "back"


async def test_a_request_above_the_plugins_frame_limit_is_refused_without_sending_it() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("ok"), config=config())  # the raw plugin accepts 1 MiB frames
        with pytest.raises(plugwire.errors.ProtocolError) as caught:
            await manager.execute("raw", Req(text="x" * (2 * 1024 * 1024)))
        assert caught.value.code == plugwire.errors.ErrorCode.FRAME_TOO_LARGE
        assert caught.value.details["max_frame"] == 1024 * 1024
        assert (await manager.execute("raw", Req(text="small"))).text == "small"
        assert transport_of(manager).pool.restarts == 0  # type: ignore[union-attr]


# ------------------------------------------------------------------- a stuck plugin
@pytest.mark.parametrize("mode", ["mute", "no-read"])
async def test_a_plugin_that_stops_answering_is_found_stuck_by_its_timeouts_and_restarted(mode: str) -> None:
    # "mute" reads every frame and answers none after its first call; "no-read" never reads.
    base = config(request_timeout=0.2)
    stall = msgspec.structs.replace(base.connection, stall_timeout=0.5)
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw(mode), config=msgspec.structs.replace(base, connection=stall))
        transport = transport_of(manager)
        conn = transport.pool.workers[0].conn  # type: ignore[union-attr]
        old_pid = transport.pool.workers[0].process.pid  # type: ignore[union-attr]
        if mode == "mute":
            assert (await manager.execute("raw", Req(text="first"))).text == "first"
        timeouts = 0
        while conn.alive and timeouts < 50:  # no health check runs here: only the timeouts tell
            # (a call in flight when the bound is reached fails with the connection: 1207)
            with pytest.raises((plugwire.PluginTimeoutError, plugwire.OutcomeUnknownError)):
                await manager.execute("raw", Req(text="lost"))
            timeouts += 1
        reason = conn.lost.result()
        assert reason.code == plugwire.errors.ErrorCode.PLUGIN_STALLED
        assert timeouts >= 2
        await wait_for_restart(transport, old_pid)
        assert not pid_alive(old_pid)


async def test_a_stuck_plugin_is_found_when_the_bound_is_reached_though_no_call_comes_after() -> None:
    # Calls time out well before stall_timeout, then nobody calls (say, an open circuit
    # breaker): the connection looks again once the plugin has been silent that long.
    base = config(request_timeout=0.1)
    stall = msgspec.structs.replace(base.connection, stall_timeout=0.6)
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("mute"), config=msgspec.structs.replace(base, connection=stall))
        transport = transport_of(manager)
        conn = transport.pool.workers[0].conn  # type: ignore[union-attr]
        old_pid = transport.pool.workers[0].process.pid  # type: ignore[union-attr]
        assert (await manager.execute("raw", Req(text="first"))).text == "first"
        for _ in range(3):  # the first timeout after an answer starts the silence; two more count
            with pytest.raises(plugwire.PluginTimeoutError):
                await manager.execute("raw", Req(text="lost"))
        assert conn.alive  # silent for less than stall_timeout so far
        async with asyncio.timeout(30):  # (a bound for the old behaviour: it never looked again)
            reason = await conn.lost  # no other call: only the second look can find it
        assert reason.code == plugwire.errors.ErrorCode.PLUGIN_STALLED
        assert reason.details["timeouts"] == 2
        await wait_for_restart(transport, old_pid)


async def test_a_slow_plugin_whose_late_answers_keep_coming_is_not_stuck() -> None:
    base = config(request_timeout=0.2)
    stall = msgspec.structs.replace(base.connection, stall_timeout=1.0)
    async with manager_for(Req, Resp) as manager:
        await manager.register(raw("ok"), config=msgspec.structs.replace(base, connection=stall))
        conn = transport_of(manager).pool.workers[0].conn  # type: ignore[union-attr]
        # Each answer comes 0.1 s after its call timed out: late, but alive. (8 timeouts span
        # more than the stall_timeout: counting only answers in time would call it stuck.)
        for _ in range(8):
            with pytest.raises(plugwire.PluginTimeoutError):
                await manager.execute("raw", Req(op="sleep", seconds=0.3))
        assert conn.alive
