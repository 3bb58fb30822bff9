"""Health monitoring: schedule, hung checks, flapping, restart, offline fast-fail, real process recovery."""

from __future__ import annotations

import asyncio
import collections
import sys
from typing import Any

import msgspec
import pytest

from plugwire import (
    AsyncPluginManager,
    ExecutionContext,
    HealthCheckConfig,
    HealthStatus,
    Plugin,
    PluginConfig,
    PluginInfo,
    PluginUnavailableError,
    Status,
    Transport,
    TransportError,
)
from plugwire._health import HealthMonitor
from plugwire._transports.base import BaseTransport
from plugwire.errors import ErrorCode, ProcessError
from plugwire.testing import Call, FakeClock


class Scripted(BaseTransport):
    """A transport whose health checks follow a script: ok, degraded, unhealthy, error, hang."""

    kind = Transport.IN_PROCESS
    wants_bytes = False

    def __init__(self, *outcomes: str, default: str = "ok") -> None:
        self.outcomes = collections.deque(outcomes)
        self.default = default
        self.health_calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.hung = asyncio.Event()
        self.calls = 0
        self.restarts = 0
        self.restart_error: Exception | None = None
        self.closed = False

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        return msgspec.structs.replace(base, name=name, transport=Transport.IN_PROCESS)

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        return self

    async def start(self) -> PluginInfo:
        return PluginInfo(name="scripted", version=f"{self.restarts}.0.0")

    async def call(self, call: Call) -> Any:
        self.calls += 1
        return call.payload

    async def health(self) -> HealthStatus:
        self.health_calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            outcome = self.outcomes.popleft() if self.outcomes else self.default
            if outcome == "hang":
                self.hung.set()
                await asyncio.Event().wait()
            if outcome == "error":
                raise TransportError("no answer")
            status = {"ok": Status.HEALTHY, "degraded": Status.DEGRADED, "unhealthy": Status.UNHEALTHY}[outcome]
            return HealthStatus(status=status, message=outcome)
        finally:
            self.in_flight -= 1

    async def restart(self) -> PluginInfo:
        self.restarts += 1
        if self.restart_error is not None:
            raise self.restart_error
        return await self.start()

    async def aclose(self) -> None:
        self.closed = True


def health(interval: float = 10.0, timeout: float = 1.0, failure_limit: int = 3) -> PluginConfig:
    return PluginConfig(
        name="p", health_check=HealthCheckConfig(interval=interval, timeout=timeout, failure_limit=failure_limit)
    )


async def tick(clock: FakeClock, seconds: float = 10.0) -> None:
    """Let one scheduled check run: move time, then wait until the monitor sleeps again."""
    clock.advance(seconds)
    await clock.wait_for_sleepers(1)


async def manager_with(transport: Scripted, clock: FakeClock, config: PluginConfig) -> AsyncPluginManager[str, str]:
    manager: AsyncPluginManager[str, str] = AsyncPluginManager(str, str, clock=clock)
    await manager.start()
    await manager.register(transport, config=config)
    await clock.wait_for_sleepers(1)
    return manager


async def test_checks_run_every_interval_and_list_plugins_reports_the_monitors_view() -> None:
    clock = FakeClock()
    transport = Scripted("ok", "degraded")
    async with await manager_with(transport, clock, health()) as manager:
        assert manager.list_plugins()["p"].message == "started; not checked yet"
        clock.advance(9.999)
        await asyncio.sleep(0)
        assert transport.health_calls == 0
        clock.advance(0.001)
        await clock.wait_for_sleepers(1)
        assert transport.health_calls == 1
        seen = manager.list_plugins()["p"]
        assert seen.status is Status.HEALTHY
        assert seen.response_time == 0.0  # on the fake clock the check took no time
        assert seen.last_check > 0
        assert seen.metadata["checks"] == "1"
        await tick(clock)
        assert manager.list_plugins()["p"].status is Status.DEGRADED  # the plugin said so


async def test_a_hung_check_fails_at_its_timeout_and_checks_never_overlap() -> None:
    clock = FakeClock()
    transport = Scripted("hang")
    async with await manager_with(transport, clock, health(interval=10, timeout=3)) as manager:
        clock.advance(10)
        await transport.hung.wait()
        joined = asyncio.create_task(manager.health())  # asked while the check hangs: joins it
        await asyncio.sleep(0)
        clock.advance(2.999)
        await asyncio.sleep(0)
        assert not joined.done()
        clock.advance(0.001)
        result = await joined
        assert result["p"].status is Status.DEGRADED
        assert "timed out after 3s" in result["p"].message
        assert transport.health_calls == 1
        assert transport.max_in_flight == 1
        await clock.wait_for_sleepers(1)
        assert manager.list_plugins()["p"].metadata["consecutive_failures"] == "1"


async def test_a_flapping_plugin_is_restarted_only_once_failures_reach_the_limit() -> None:
    clock = FakeClock()
    transport = Scripted("error", "ok", "error", "error", "ok", "unhealthy", "error", "ok", "error", "error", "error")
    async with await manager_with(transport, clock, health(failure_limit=3)) as manager:
        for _ in range(8):
            await tick(clock)
        assert transport.restarts == 0
        assert manager.list_plugins()["p"].status is Status.HEALTHY
        await tick(clock)
        await tick(clock)
        assert transport.restarts == 0
        assert manager.list_plugins()["p"].status is Status.DEGRADED
        await tick(clock)  # the third failure in a row
        assert transport.restarts == 1
        seen = manager.list_plugins()["p"]
        assert seen.status is Status.DEGRADED
        assert "restarted" in seen.message
        assert manager.get_plugin("p").info().version == "1.0.0"  # what the restarted plugin said
        await tick(clock)
        assert manager.list_plugins()["p"].status is Status.HEALTHY


async def test_a_failed_restart_takes_the_plugin_offline_calls_fail_fast_and_it_is_retried() -> None:
    clock = FakeClock()
    transport = Scripted(default="error")
    transport.restart_error = ProcessError("cannot start")
    async with await manager_with(transport, clock, health(failure_limit=1)) as manager:
        assert await manager.execute("p", "hello") == "hello"
        await tick(clock)
        assert transport.restarts == 1
        assert manager.list_plugins()["p"].status is Status.OFFLINE
        with pytest.raises(PluginUnavailableError) as caught:
            await manager.execute("p", "hello")
        assert caught.value.code == ErrorCode.PLUGIN_OFFLINE == 1602
        assert "restart failed" in str(caught.value)
        assert transport.calls == 1
        await tick(clock)
        assert transport.restarts == 2  # a failed restart is tried again at the next check
        assert manager.list_plugins()["p"].status is Status.OFFLINE
        transport.default = "ok"
        await tick(clock)  # one good check brings it back
        assert manager.list_plugins()["p"].status is Status.HEALTHY
        assert await manager.execute("p", "again") == "again"


async def test_restarts_in_a_row_are_limited_then_the_plugin_goes_offline() -> None:
    clock = FakeClock()
    transport = Scripted(default="error")
    async with await manager_with(transport, clock, health(failure_limit=2)) as manager:
        for _ in range(6):
            await tick(clock)
        assert transport.restarts == 3
        assert manager.list_plugins()["p"].status is Status.DEGRADED
        await tick(clock)
        await tick(clock)
        assert transport.restarts == 3
        assert manager.list_plugins()["p"].status is Status.OFFLINE
        assert "gave up after 3 restarts" in manager.list_plugins()["p"].message


async def test_a_restart_that_hangs_counts_as_failed_at_the_restart_timeout() -> None:
    clock = FakeClock()
    transport = Scripted(default="error")
    started = asyncio.Event()

    async def hanging_restart() -> PluginInfo:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    transport.restart = hanging_restart  # type: ignore[method-assign]
    monitor = HealthMonitor(
        "p", transport, HealthCheckConfig(interval=10, failure_limit=1), clock=clock, restart_timeout=5
    )
    check = asyncio.create_task(monitor.check())
    await started.wait()
    clock.advance(5)
    assert (await check).status is Status.OFFLINE
    assert monitor.offline
    assert "within 5s" in monitor.last.message


async def test_with_health_checks_disabled_there_is_no_schedule_and_no_action() -> None:
    clock = FakeClock()
    transport = Scripted(default="error")
    config = PluginConfig(name="p", health_check=HealthCheckConfig(enabled=False, failure_limit=1))
    async with AsyncPluginManager(str, str, clock=clock) as manager:
        await manager.register(transport, config=config)
        await asyncio.sleep(0)
        assert clock.sleepers == 0
        for _ in range(5):
            assert (await manager.health())["p"].status is Status.UNHEALTHY
        assert transport.restarts == 0
        assert await manager.execute("p", "still callable") == "still callable"


async def test_monitor_tasks_end_with_the_manager_and_with_unregister() -> None:
    clock = FakeClock()

    def monitor_tasks() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("plugwire-health")]

    manager: AsyncPluginManager[str, str] = AsyncPluginManager(str, str, clock=clock)
    async with manager:
        await manager.register(Scripted(), name="a", config=health())
        await manager.register(Scripted("hang"), name="b", config=health())
        clock.advance(10)
        await asyncio.sleep(0)
        assert len(monitor_tasks()) >= 2
        await manager.unregister("a")
        assert all("-a" not in t.get_name() for t in monitor_tasks())
    await asyncio.sleep(0)
    assert monitor_tasks() == []


# ------------------------------------------------------------- a real process
_ECHO_CHILD = """
import sys
for line in sys.stdin:
    if line.strip() == "hang":
        continue
    sys.stdout.write(line)
    sys.stdout.flush()
"""


class EchoProcess(BaseTransport):
    """A real child process speaking a line protocol; health is a ping over the same pipes."""

    kind = Transport.EXECUTABLE
    wants_bytes = False

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.lock = asyncio.Lock()
        self.pids: list[int] = []
        self.reaped: list[int | None] = []

    def configure(self, name: str, base: PluginConfig) -> PluginConfig:
        return msgspec.structs.replace(base, name=name, executable=sys.executable)

    def create_transport(self, config: PluginConfig, request_type: Any) -> BaseTransport:
        return self

    async def start(self) -> PluginInfo:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _ECHO_CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.pids.append(self.proc.pid)
        return PluginInfo(name="echo-process", version=str(len(self.pids)))

    async def _round_trip(self, line: str) -> str:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            raise TransportError("the plugin process is not running", code=ErrorCode.CONNECTION_LOST)
        assert proc.stdin is not None
        assert proc.stdout is not None
        async with self.lock:
            try:
                proc.stdin.write(f"{line}\n".encode())
                await proc.stdin.drain()
                answer = await proc.stdout.readline()
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise TransportError("the plugin process went away", code=ErrorCode.CONNECTION_LOST) from exc
        if not answer:
            raise TransportError("the plugin process exited mid-call", code=ErrorCode.CONNECTION_LOST)
        return answer.decode().rstrip("\n")

    async def call(self, call: Call) -> Any:
        return await self._round_trip(str(call.payload))

    async def health(self) -> HealthStatus:
        if await self._round_trip("ping") != "ping":
            return HealthStatus(status=Status.UNHEALTHY, message="bad ping")
        return HealthStatus(status=Status.HEALTHY, message="pong")

    async def aclose(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        else:
            await proc.wait()
        self.reaped.append(proc.returncode)


async def test_a_real_process_killed_mid_run_is_detected_restarted_and_serves_again() -> None:
    clock = FakeClock()
    transport = EchoProcess()
    async with await manager_with(transport, clock, health(interval=5, timeout=30, failure_limit=2)) as manager:
        assert await manager.execute("p", "before") == "before"
        first = transport.proc
        assert first is not None

        no_retry = ExecutionContext(max_retries=0)  # retries would wait on the fake clock
        in_flight = asyncio.create_task(manager.execute("p", "hang", no_retry))
        await asyncio.sleep(0)
        first.kill()
        with pytest.raises(TransportError):  # the call running when it died fails with a coded error
            await in_flight
        await first.wait()

        await tick(clock, 5)  # detected ...
        assert manager.list_plugins()["p"].status is Status.DEGRADED
        assert transport.pids == [first.pid]
        await tick(clock, 5)  # ... and restarted once the failure limit is reached
        assert len(transport.pids) == 2
        assert transport.reaped == [-9]  # the killed child was reaped
        assert "restarted" in manager.list_plugins()["p"].message

        assert await manager.execute("p", "after") == "after"  # serves again, from a new process
        await tick(clock, 5)
        assert manager.list_plugins()["p"].status is Status.HEALTHY
        second = transport.proc
        assert second is not None
        assert second.pid != first.pid
    assert second.returncode is not None  # shutting the manager down stopped the new child


class Sick(Plugin[str, str]):
    """An in-process plugin whose health is set by the test."""

    def __init__(self) -> None:
        self.status = Status.UNHEALTHY
        self.closed = False

    def info(self) -> PluginInfo:
        return PluginInfo(name="sick")

    async def execute(self, ctx: ExecutionContext, request: str) -> str:
        return request

    async def health(self) -> HealthStatus:
        return HealthStatus(status=self.status, message="as told")

    async def close(self) -> None:
        self.closed = True


async def test_an_in_process_plugin_is_not_restarted_but_taken_offline_until_it_recovers() -> None:
    clock = FakeClock()
    plugin = Sick()
    async with AsyncPluginManager(str, str, clock=clock) as manager:
        await manager.register(plugin, config=health(failure_limit=2))
        await clock.wait_for_sleepers(1)
        await tick(clock)
        await tick(clock)
        seen = manager.list_plugins()["p"]
        assert seen.status is Status.OFFLINE
        assert "cannot be restarted" in seen.message
        assert not plugin.closed
        with pytest.raises(PluginUnavailableError):
            await manager.execute("p", "x")
        plugin.status = Status.HEALTHY
        await tick(clock)
        assert await manager.execute("p", "x") == "x"


async def test_a_check_asked_for_after_the_monitor_closed_reports_the_plugin_removed() -> None:
    transport = Scripted()
    monitor = HealthMonitor("p", transport, health().health_check, clock=FakeClock())
    await monitor.aclose()
    status = await monitor.check()
    assert status.status is Status.OFFLINE
    assert status.message == "health check stopped: the plugin was removed"
    assert transport.health_calls == 0  # no task was started for it
    await monitor.aclose()  # idempotent


class BrokenRestartable(Scripted):
    """A transport with a bug: asking whether it can be restarted raises, once."""

    def __init__(self) -> None:
        super().__init__(default="error")
        self.broken = True

    @property
    def restartable(self) -> bool:  # type: ignore[override]
        if self.broken:
            self.broken = False
            raise RuntimeError("bug in the transport")
        return True


async def test_a_check_that_raises_is_logged_once_by_the_monitor_and_the_schedule_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    transport = BrokenRestartable()
    monitor = HealthMonitor("p", transport, health(failure_limit=1).health_check, clock=clock)
    monitor.start()
    await clock.wait_for_sleepers(1)
    with caplog.at_level("ERROR", logger="plugwire"):
        await tick(clock)
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in failures] == ["plugwire-health-p: task 'check' failed"]
    await tick(clock)  # the next scheduled check runs, and restarts the plugin
    assert transport.restarts == 1
    await monitor.aclose()
    assert len(monitor._tasks) == 0
