"""The subprocess transport through the manager: calls, pools, timeouts, hooks, config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

import msgspec
import pytest

import plugwire
from plugwire._transports._pool import ProcessPool
from plugwire._transports._process import PluginProcess
from plugwire._transports.subprocess import SubprocessOptions, SubprocessTransport
from tests.support.procguard import PLUGINS, eventually, manager_for, pid_alive, plugin_env, python_plugin

pytestmark = pytest.mark.usefixtures("no_leaks")


class Req(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


class Resp(msgspec.Struct):
    text: str
    pid: int = 0


def config(name: str = "echo", *, processes: int = 1, request_timeout: float = 30.0) -> plugwire.PluginConfig:
    # The transport is under test: no breaker or retry policy in the way of what it reports.
    return plugwire.PluginConfig(
        name=name,
        circuit_breaker=plugwire.CircuitBreakerConfig(enabled=False),
        retry=plugwire.RetryConfig(max_retries=0),
        connection=plugwire.ConnectionConfig(
            max_connections=processes, request_timeout=request_timeout, connection_timeout=10.0
        ),
    )


async def test_a_subprocess_plugin_answers_typed_calls_through_the_manager() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        answer = await manager.execute("echo", Req(text="hello"))
        assert answer.text == "hello"
        assert answer.pid != os.getpid()
        assert manager.get_plugin("echo").info().version == "1.2.3"


async def test_the_process_lives_for_the_registration_not_for_one_request() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        pids = {(await manager.execute("echo", Req(text=str(i)))).pid for i in range(5)}
        assert len(pids) == 1
        (pid,) = pids
        assert pid_alive(pid)
    assert not pid_alive(pid)


async def test_plugin_errors_reach_the_host_coded_with_message_and_retryable() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        with pytest.raises(plugwire.ExecutionError) as marked:
            await manager.execute("echo", Req(op="fail", text="database down"))
        assert marked.value.code == plugwire.errors.ErrorCode.EXECUTION_FAILED
        assert marked.value.message == "database down"
        assert marked.value.retryable is True
        with pytest.raises(plugwire.ExecutionError) as unmarked:
            await manager.execute("echo", Req(op="boom", text="oops"))
        assert "RuntimeError: oops" in unmarked.value.message
        assert unmarked.value.retryable is False
        with pytest.raises(plugwire.PluginTimeoutError) as timed_out:  # its own words, not a generic timeout
            await manager.execute("echo", Req(op="late", text="the upstream took 30s"))
        assert timed_out.value.message == "the upstream took 30s"
        assert timed_out.value.retryable is False


async def test_many_calls_in_flight_on_one_process_are_matched_by_id() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        answers = await asyncio.gather(*(manager.execute("echo", Req(text=f"n{i}")) for i in range(64)))
        assert [a.text for a in answers] == [f"n{i}" for i in range(64)]


async def test_the_pool_grows_while_all_processes_are_busy_and_dispatches_least_loaded() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config(processes=2))
        transport = manager._entries["echo"].transport
        assert isinstance(transport, SubprocessTransport)
        assert transport.pool is not None
        assert len(transport.pool.workers) == 1
        # A long call keeps process 1 busy; the next call finds every process busy, which
        # makes the pool start process 2.
        slow = asyncio.ensure_future(manager.execute("echo", Req(op="sleep", seconds=30)))
        await asyncio.sleep(0.05)
        first_pid = (await manager.execute("echo", Req(text="while busy"))).pid
        pool = transport.pool
        await pool.wait_for(lambda: len(pool.workers) == 2)
        third = await manager.execute("echo", Req(text="x"))
        assert third.pid != first_pid  # least loaded: not the busy process
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert len(transport.pool.workers) == 2  # never more than max_connections


async def test_a_timed_out_call_sends_cancel_frees_its_slot_and_the_late_reply_is_dropped() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("raw_plugin.py"), config=config("raw"))
        transport = manager._entries["raw"].transport
        assert isinstance(transport, SubprocessTransport)
        assert transport.pool is not None
        conn = transport.pool.workers[0].conn
        ctx = plugwire.ExecutionContext(timeout=0.1)
        with pytest.raises(plugwire.PluginTimeoutError):
            await manager.execute("raw", Req(op="sleep", seconds=0.5), ctx)
        assert conn.inflight == 0
        # The raw plugin ignores cancel and answers late; the next call is not confused by it.
        answer = await manager.execute("raw", Req(text="after"))
        assert answer.text == "after"
        assert conn.stray_replies == 0


async def test_the_sdk_cancels_the_plugins_work_when_the_host_cancels(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="plugwire.plugin.echo")
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        ctx = plugwire.ExecutionContext(request_id="slow-1", timeout=0.2)
        with pytest.raises(plugwire.PluginTimeoutError):
            await manager.execute("echo", Req(op="sleep", seconds=30), ctx)
        await eventually(lambda: any("cancelled (request slow-1)" in r.getMessage() for r in caplog.records))
        health = await manager.health()
        assert health["echo"].status is plugwire.Status.HEALTHY


async def test_health_is_answered_by_the_plugins_health_method() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        status = (await manager.health())["echo"]
        assert status.status is plugwire.Status.HEALTHY
        assert status.message == "ok"
        assert status.metadata["processes"] == "1"


async def test_the_context_reaches_the_plugin_with_a_deadline() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        ctx = plugwire.ExecutionContext(request_id="req-7", metadata={"m": "1"}, headers={"h": "2"}, timeout=5)
        answer = await manager.execute("echo", Req(op="ctx"), ctx)
        assert answer.text == "req-7|{'m': '1'}|{'h': '2'}|True"


async def test_the_plugin_environment_is_scrubbed_of_host_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_SECRET_TOKEN", "s3cret")
    monkeypatch.setenv("LC_TESTING", "kept")
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py", GIVEN="yes"), config=config())
        assert (await manager.execute("echo", Req(op="env", text="HOST_SECRET_TOKEN"))).text == "<unset>"
        assert (await manager.execute("echo", Req(op="env", text="GIVEN"))).text == "yes"
        assert (await manager.execute("echo", Req(op="env", text="LC_TESTING"))).text == "kept"
        assert (await manager.execute("echo", Req(op="env", text="PLUGWIRE_PLUGIN_NAME"))).text == "echo"


async def test_print_and_logging_in_a_plugin_become_host_log_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plugwire.plugin.echo")
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        assert (await manager.execute("echo", Req(op="print", text="a printed line"))).text == "a printed line"
        await manager.execute("echo", Req(op="log", text="a warning"))
    records = [r for r in caplog.records if r.name == "plugwire.plugin.echo"]
    printed = [r for r in records if r.getMessage() == "a printed line"]
    warned = [r for r in records if r.getMessage() == "a warning"]
    assert [r.levelno for r in printed] == [logging.INFO]
    assert [r.levelno for r in warned] == [logging.WARNING]


async def test_a_config_file_with_an_executable_plugin_loads_through_load_config(tmp_path: Path) -> None:
    path = tmp_path / "plugins.yaml"
    env = plugin_env()
    path.write_text(
        f"""
plugins:
  - name: from-file
    transport: executable
    executable: {sys.executable}
    args: ["{PLUGINS / "echo_plugin.py"}"]
    env: {{PYTHONPATH: "{env["PYTHONPATH"]}"}}
    work_dir: "{tmp_path}"
"""
    )
    async with manager_for(Req, Resp) as manager:
        await manager.load_config(path)
        assert (await manager.execute("from-file", Req(text="cfg"))).text == "cfg"


async def test_prepare_launch_is_awaited_before_every_spawn_and_its_argv_runs() -> None:
    seen: list[list[str]] = []

    async def prepare(argv: list[str]) -> list[str]:
        seen.append(argv)
        return [*argv[:-1], str(PLUGINS / "echo_plugin.py")]

    options = SubprocessOptions(prepare_launch=prepare)
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("does-not-exist.py", options=options), config=config())
        assert (await manager.execute("echo", Req(text="swapped"))).text == "swapped"
        transport = manager._entries["echo"].transport
        await transport.restart()
        assert (await manager.execute("echo", Req(text="again"))).text == "again"
    assert len(seen) == 2
    assert seen[0][-1].endswith("does-not-exist.py")


async def test_a_prepare_launch_that_raises_fails_the_start_without_spawning() -> None:
    async def refuse(argv: list[str]) -> list[str]:
        raise plugwire.errors.SecurityError("hash mismatch")

    options = SubprocessOptions(prepare_launch=refuse)
    async with manager_for(Req, Resp) as manager:
        with pytest.raises(plugwire.errors.SecurityError, match="hash mismatch"):
            await manager.register(python_plugin("echo_plugin.py", options=options), config=config())
        assert "echo" not in manager


async def test_credentials_are_sent_in_the_hello_and_checked_by_the_plugin() -> None:
    good = SubprocessOptions(credentials=lambda: {"authorization": "Bearer let-me-in"})
    bad = SubprocessOptions(credentials=lambda: {"authorization": "Bearer wrong"})
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("auth_checked_plugin.py", options=good), config=config("ok"))
        assert (await manager.execute("ok", Req(text="in"))).text == "in"
        with pytest.raises(plugwire.errors.AuthenticationError) as refused:
            await manager.register(python_plugin("auth_checked_plugin.py", options=bad), config=config("bad"))
        assert refused.value.code == plugwire.errors.ErrorCode.AUTH_INVALID_CREDENTIALS
        with pytest.raises(plugwire.errors.AuthenticationError) as missing:
            await manager.register(python_plugin("auth_checked_plugin.py"), config=config("none"))
        assert missing.value.code == plugwire.errors.ErrorCode.AUTH_MISSING_CREDENTIALS


async def test_a_plugin_that_negotiates_json_is_transcoded_transparently() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py", "json"), config=config())
        transport = manager._entries["echo"].transport
        assert isinstance(transport, SubprocessTransport)
        assert transport.pool is not None
        assert transport.pool.workers[0].conn.codec == "json"
        assert (await manager.execute("echo", Req(text="über"))).text == "über"


async def test_restart_starts_the_new_process_first_then_retires_the_old_one() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        transport = manager._entries["echo"].transport
        assert isinstance(transport, SubprocessTransport)
        before = (await manager.execute("echo", Req())).pid
        slow = asyncio.ensure_future(manager.execute("echo", Req(op="sleep", seconds=0.2, text="old")))
        await asyncio.sleep(0)  # the call is written to the old process
        await transport.restart()
        after = (await manager.execute("echo", Req())).pid
        assert before != after
        assert (await slow).text == "old"  # the old process finished its call before stopping
        await asyncio.gather(*transport._tasks.tasks())  # the old pool, closing in the background
        assert not pid_alive(before)


async def test_large_payloads_cross_in_both_directions_even_many_at_once() -> None:
    async with manager_for(Req, Resp) as manager:
        await manager.register(python_plugin("echo_plugin.py"), config=config())
        big = "b" * (3 * 1024 * 1024)
        assert (await manager.execute("echo", Req(text=big))).text == big
        texts = [chr(65 + i) * (1024 * 1024) for i in range(16)]
        answers = await asyncio.gather(*(manager.execute("echo", Req(text=t)) for t in texts))
        assert [a.text for a in answers] == texts
        transport = manager._entries["echo"].transport
        assert isinstance(transport, SubprocessTransport)
        assert transport.pool is not None
        assert transport.pool.workers[0].conn.capacity == 256 * 1024  # the big buffers were given back


async def grown_to_two(manager: plugwire.AsyncPluginManager[Req, Resp]) -> tuple[ProcessPool, list[PluginProcess]]:
    """Register the echo plugin with up to two processes (one kept idle, `idle_timeout` 0.2 s),
    grow it to two with a slow call beside another, and wait for the slow call; returns the
    pool and its two processes (taken before the extra one can go idle)."""
    cfg = plugwire.PluginConfig(
        name="echo",
        connection=plugwire.ConnectionConfig(max_connections=2, max_idle_connections=1, idle_timeout=0.2),
    )
    await manager.register(python_plugin("echo_plugin.py"), config=cfg)
    transport = manager._entries["echo"].transport
    assert isinstance(transport, SubprocessTransport)
    pool = transport.pool
    assert pool is not None
    slow = asyncio.ensure_future(manager.execute("echo", Req(op="sleep", seconds=0.1)))
    await asyncio.sleep(0)
    await manager.execute("echo", Req(text="grow"))
    await pool.wait_for(lambda: len(pool.workers) == 2)
    processes = [w.process for w in pool.workers]
    await slow
    return pool, processes


async def test_extra_processes_idle_for_idle_timeout_are_stopped_down_to_the_idle_minimum() -> None:
    async with manager_for(Req, Resp) as manager:
        pool, processes = await grown_to_two(manager)
        await pool.wait_for(lambda: len(pool.workers) == 1)
        (stopped,) = [p for p in processes if p is not pool.workers[0].process]
        await asyncio.wait_for(asyncio.shield(stopped.exited), 10)
        assert stopped.exited.result() == 0  # stopped gracefully, not killed
        assert (await manager.execute("echo", Req(text="still here"))).text == "still here"


async def test_health_checks_do_not_keep_an_idle_extra_process_running() -> None:
    # The reaper counts the calls each connection started; health checks are not calls. The
    # manager closes while the reaped process may still be stopping: that stop is waited
    # for, not cut short (which left the process running).
    async with manager_for(Req, Resp) as manager:
        pool, _ = await grown_to_two(manager)
        checks = 0

        async def checking() -> None:
            nonlocal checks
            while True:  # each check reaches every live process
                await manager.health()
                checks += 1

        checker = asyncio.create_task(checking())
        try:
            await asyncio.wait_for(pool.wait_for(lambda: len(pool.workers) == 1), 10)
        finally:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
        assert checks > 0
        assert pool.workers[0].conn.calls_started >= 1


def test_the_blocking_manager_runs_subprocess_plugins_too() -> None:
    manager: plugwire.PluginManager[Req, Resp] = plugwire.PluginManager(Req, Resp)
    with manager:
        manager.register(python_plugin("echo_plugin.py"), config=config())
        answer = manager.execute("echo", Req(text="blocking"))
        assert answer.text == "blocking"
        assert pid_alive(answer.pid)
    assert not pid_alive(answer.pid)


def test_max_message_size_bounds_the_frames_of_executable_plugins() -> None:
    config = plugwire.PluginConfig(
        name="p", executable="x", connection=plugwire.ConnectionConfig(max_message_size=4096)
    )
    transport = plugwire.subprocess("x").create_transport(config, None)
    assert isinstance(transport, SubprocessTransport)
    assert transport.options.max_frame == 4096
    explicit = plugwire.subprocess("x", options=SubprocessOptions(max_frame=1 << 20)).create_transport(config, None)
    assert isinstance(explicit, SubprocessTransport)
    assert explicit.options.max_frame == 1 << 20
