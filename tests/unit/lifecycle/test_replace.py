"""`replace()`: a new generation beside the old, an atomic switch, draining, and what fails.

Real subprocess plugins (tests/support/plugins/versioned_plugin.py) that report their version.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import pytest

import plugwire
from plugwire import AsyncPluginManager, PluginConfig
from plugwire.errors import DrainCancelledError, ErrorCode, ReplacementError
from tests.support.plugins.versioned_plugin import Req, Resp
from tests.support.procguard import PLUGINS, plugin_env, python_plugin

Manager = AsyncPluginManager[Req, Resp]


def versioned(version: str, mode: str = "") -> object:
    return python_plugin("versioned_plugin.py", version, *((mode,) if mode else ()))


class Holding(logging.Handler):
    """Counts log records that start with `prefix` (by default the plugin's "holding": a held
    call reached the plugin)."""

    def __init__(self, prefix: str = "holding ") -> None:
        super().__init__()
        self.prefix = prefix
        self.count = 0
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.count += 1
            self.changed.set()

    async def wait_for(self, count: int) -> None:
        while self.count < count:
            self.changed.clear()
            await self.changed.wait()


@pytest.fixture
def holding() -> object:
    handler = Holding()
    logger = logging.getLogger("plugwire.plugin")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def plugin_config(version: str, *extra: str, name: str = "v", **fields: object) -> PluginConfig:
    """A config-file plugin running versioned_plugin.py at `version`."""
    return PluginConfig(
        name=name,
        executable=sys.executable,
        args=(str(PLUGINS / "versioned_plugin.py"), version, *extra),
        env=plugin_env(),
        **fields,  # type: ignore[arg-type]
    )


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_replace_switches_to_the_new_generation_and_closes_the_old() -> None:
    async with Manager(Req, Resp) as manager:
        await manager.register(versioned("1"), name="v")
        first = await manager.execute("v", Req(text="a"))
        assert first.version == "1"
        assert manager.list_plugins()["v"].metadata["generation"] == "1"

        result = await manager.replace("v", versioned("2"))

        assert (result.old_generation, result.generation, result.version) == (1, 2, "2")
        second = await manager.execute("v", Req(text="b"))
        assert second.version == "2"
        assert second.pid != first.pid
        with pytest.raises(ProcessLookupError):  # the old generation's process is gone
            os.kill(first.pid, 0)
        meta = manager.list_plugins()["v"].metadata
        assert (meta["generation"], meta["inflight"]) == ("2", "0")
        assert "draining" not in meta
        assert (await manager.health())["v"].metadata["generation"] == "2"
        assert manager.get_plugin("v").info().version == "2"


async def test_replace_without_a_source_starts_the_same_plugin_again() -> None:
    async with Manager(Req, Resp) as manager:
        await manager.register(versioned("1"), name="v")
        before = (await manager.execute("v", Req())).pid
        result = await manager.replace("v")
        after = await manager.execute("v", Req())
        assert (result.generation, after.version) == (2, "1")
        assert after.pid != before


async def test_a_config_plugin_is_replaced_by_a_new_config() -> None:
    async with Manager(Req, Resp) as manager:
        await manager.load_config(plugwire.ManagerConfig(plugins=(plugin_config("1"),)))
        assert (await manager.execute("v", Req())).version == "1"
        await manager.replace("v", config=plugin_config("2"))
        assert (await manager.execute("v", Req())).version == "2"
        with pytest.raises(plugwire.ConfigError):
            await manager.replace("v", config=plugin_config("3", name="other"))


@pytest.mark.parametrize(
    ("mode", "cause", "words"),
    [
        ("crash", ErrorCode.PROCESS_EXITED_DURING_START, "missing library"),
        ("hang", ErrorCode.PROCESS_START_TIMEOUT, "failed to start"),
        ("unhealthy", None, "database unreachable"),
    ],
)
async def test_a_new_generation_that_cannot_serve_leaves_the_old_one_serving(
    mode: str, cause: ErrorCode | None, words: str
) -> None:
    # A short handshake limit for the new generation only (the one that hangs never answers).
    fast = PluginConfig(name="v", connection=plugwire.ConnectionConfig(connection_timeout=1.0))
    async with Manager(Req, Resp) as manager:
        await manager.register(versioned("1"), name="v")
        pid = (await manager.execute("v", Req())).pid
        with pytest.raises(ReplacementError) as caught:
            await manager.replace("v", versioned("2", mode), config=fast)
        error = caught.value
        assert error.code == ErrorCode.REPLACEMENT_FAILED
        assert int(error.code) == 1210
        assert words in str(error)
        assert "keeps serving" in str(error)
        if cause is not None:
            assert isinstance(error.__cause__, plugwire.PluginError)
            assert error.__cause__.code == cause
        answer = await manager.execute("v", Req())
        assert (answer.version, answer.pid) == ("1", pid)
        assert manager.list_plugins()["v"].metadata["generation"] == "1"
        # A later good replacement still works, and numbers its generation after the last one serving.
        assert (await manager.replace("v", versioned("3"))).generation == 2


async def test_calls_in_flight_finish_on_the_old_generation() -> None:
    switched = Holding("replaced plugin 'inproc'")
    manager_log = logging.getLogger("plugwire.manager")
    manager_log.addHandler(switched)
    level = manager_log.level
    manager_log.setLevel(logging.INFO)  # the switch is logged at info (another test may have raised it)
    metrics_on = plugwire.ManagerConfig(metrics=plugwire.MetricsConfig(enabled=True))
    async with Manager(Req, Resp, metrics_on) as manager:
        gate = asyncio.Event()
        entered = asyncio.Event()

        class Slow(plugwire.Plugin[Req, Resp]):
            def info(self) -> plugwire.PluginInfo:
                return plugwire.PluginInfo(name="slow", version="9")

            async def execute(self, ctx: plugwire.ExecutionContext, request: Req) -> Resp:
                entered.set()
                await gate.wait()
                return Resp(text=request.text, version="9")

        await manager.register(Slow(), name="inproc")
        running = asyncio.create_task(manager.execute("inproc", Req(text="old")))
        await entered.wait()
        replacing = asyncio.create_task(manager.replace("inproc", Slow(), drain_timeout=30))
        try:
            await switched.wait_for(1)
        finally:
            manager_log.removeHandler(switched)
            manager_log.setLevel(level)
        assert manager.list_plugins()["inproc"].metadata["generation"] == "2"
        assert manager.list_plugins()["inproc"].metadata["draining"] == "1:1"
        # The call draining on generation 1 is still an active request of the plugin.
        during = manager.get_metrics().plugins["inproc"]
        assert (during.active_requests, during.requests_total) == (1, 1)
        assert not replacing.done()  # still draining generation 1
        gate.set()
        assert (await running).text == "old"
        result = await replacing
        assert (result.drained, result.cancelled, result.cut) == (1, 0, 0)
        after = manager.get_metrics().plugins["inproc"]
        assert (after.active_requests, after.requests_total, after.requests_success) == (0, 1, 1)


async def test_drain_timeout_cancels_with_1211_and_the_plugin_gets_cancel(holding: Holding) -> None:
    async with Manager(Req, Resp) as manager:
        await manager.register(versioned("1"), name="v")
        old_pid = (await manager.execute("v", Req())).pid
        held = [asyncio.create_task(manager.execute("v", Req(op="hold"))) for _ in range(3)]
        await holding.wait_for(3)
        result = await manager.replace("v", versioned("2"), drain_timeout=0.05)
        assert (result.cancelled, result.cut) == (3, 0)
        for task in held:
            with pytest.raises(DrainCancelledError) as caught:
                await task
            assert caught.value.code == ErrorCode.DRAIN_CANCELLED
            assert int(caught.value.code) == 1211
            assert caught.value.retryable
            assert caught.value.plugin == "v"
        # The old process got `cancel` for each call: its log says so before it closed.
        assert manager._entries["v"].transport is not None
        assert (await manager.execute("v", Req())).pid != old_pid


async def test_the_plugin_receives_cancel_when_its_call_is_cut(holding: Holding) -> None:
    """The cancelled call reached the plugin as `cancel`: a plugin that counts cancellations,
    kept running under another name, says so (its calls are cut while it lives on)."""
    async with Manager(Req, Resp) as manager:
        await manager.register(versioned("1"), name="v")
        held = asyncio.create_task(manager.execute("v", Req(op="hold")))
        await holding.wait_for(1)
        entry = manager._entries["v"]
        assert manager._lifecycle.cancel_calls(entry) == 1
        with pytest.raises(DrainCancelledError):
            await held
        answer = await manager.execute("v", Req(op="cancelled"))
        assert answer.text == "1"


async def test_a_callers_own_cancellation_stays_a_cancellation(holding: Holding) -> None:
    async with Manager(Req, Resp) as manager:
        await manager.register(versioned("1"), name="v")
        held = asyncio.create_task(manager.execute("v", Req(op="hold")))
        await holding.wait_for(1)
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        assert not manager._lifecycle.cut


async def test_replacements_of_one_name_run_one_at_a_time() -> None:
    async with Manager(Req, Resp) as manager:
        await manager.register(versioned("1"), name="v")
        results = await asyncio.gather(*(manager.replace("v", versioned(str(n))) for n in (2, 3, 4)))
        assert sorted(r.generation for r in results) == [2, 3, 4]
        assert manager.list_plugins()["v"].metadata["generation"] == "4"


async def test_replace_of_an_unknown_or_closed_plugin_is_refused() -> None:
    manager = Manager(Req, Resp)
    async with manager:
        with pytest.raises(plugwire.PluginNotFoundError):
            await manager.replace("nope", versioned("1"))
    with pytest.raises(plugwire.errors.ManagerClosedError):
        await manager.replace("nope", versioned("1"))


async def test_counters_carry_across_a_replacement() -> None:
    async with Manager(Req, Resp, plugwire.ManagerConfig(metrics=plugwire.MetricsConfig(enabled=True))) as manager:
        await manager.register(versioned("1"), name="v")
        await manager.execute("v", Req())
        await manager.health()
        await manager.replace("v", versioned("2"))
        await manager.execute("v", Req())
        await manager.health()
        metrics = manager.get_metrics().plugins["v"]
        assert metrics.requests_success == 2
        assert metrics.health_checks == 2  # generation 1's check, carried, and generation 2's


async def test_replacement_is_audited(tmp_path: object) -> None:
    from pathlib import Path

    audit_file = Path(str(tmp_path)) / "audit.jsonl"
    security = plugwire.SecurityConfig(
        enabled=True,
        policy=plugwire.SecurityPolicy.AUDIT,
        audit_config=plugwire.config.SecurityAuditConfig(enabled=True, audit_file=str(audit_file)),
    )
    async with Manager(Req, Resp) as manager:
        await manager.enable_plugin_security(security)
        await manager.register(versioned("1"), name="v")
        await manager.replace("v", versioned("2"))
        with pytest.raises(ReplacementError):
            await manager.replace("v", versioned("3", "crash"))
        assert manager.audit is not None
        await asyncio.to_thread(manager.audit.flush)
        events = [str(row.event) for row in manager.audit.query(plugin="v")]
    assert "plugin.replaced" in events
    assert "plugin.replace_failed" in events


async def test_shutdown_reports_what_it_cut(holding: Holding) -> None:
    manager = Manager(Req, Resp)
    async with manager:
        await manager.register(versioned("1"), name="v")
        held = asyncio.create_task(manager.execute("v", Req(op="hold")))
        await holding.wait_for(1)
        report = await manager.shutdown(0.05)
    assert report.cut == {"v": 1}
    assert not report.drained
    with pytest.raises(DrainCancelledError):
        await held
    assert (await manager.shutdown()) is report


@pytest.mark.load
@pytest.mark.timeout(300)  # 104 plugin starts: ~30 s on a quiet 2-CPU machine, far more on a busy one
async def test_100_replacements_under_load_fail_no_call() -> None:
    """16 concurrent callers while 4 plugins are replaced 25 times each (100 in
    all, 4 at a time), v1/v2 alternating."""
    before = fds()
    answers: list[tuple[str, Resp]] = []
    failures: list[BaseException] = []
    names = ("a", "b", "c", "d")
    async with Manager(Req, Resp) as manager:
        for name in names:
            await manager.register(versioned("1"), name=name)
        stop = asyncio.Event()

        async def caller(n: int) -> None:
            name = names[n % len(names)]
            while not stop.is_set():
                try:
                    answers.append((name, await manager.execute(name, Req(text=str(n)))))
                except plugwire.PluginError as exc:
                    failures.append(exc)
                await asyncio.sleep(0.01)

        async def upgrade(name: str) -> None:
            for n in range(25):
                await manager.replace(name, versioned("2" if n % 2 == 0 else "1"), drain_timeout=30)

        callers = [asyncio.create_task(caller(n)) for n in range(16)]
        await asyncio.gather(*(upgrade(name) for name in names))
        stop.set()
        await asyncio.gather(*callers)
        assert {manager.list_plugins()[name].metadata["generation"] for name in names} == {"26"}
    # (The offered load is 16 callers with a 10 ms pause: up to 1600 calls/s; the rate reached
    # depends on the machine, so it is measured in the benchmark suite, not asserted here.)
    assert failures == []
    # Every answer came from one generation: each process answered with one version only.
    versions_by_pid: dict[int, set[str]] = {}
    for _, answer in answers:
        versions_by_pid.setdefault(answer.pid, set()).add(answer.version)
    assert all(len(v) == 1 for v in versions_by_pid.values())
    assert len(versions_by_pid) >= 90  # the load reached (nearly) every one of the 104 generations
    assert fds() <= before
