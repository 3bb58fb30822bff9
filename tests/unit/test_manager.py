from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import plugwire
from plugwire import (
    AsyncPluginManager,
    ExecutionContext,
    ManagerConfig,
    PluginConfig,
    PluginInfo,
    Status,
)
from plugwire.testing import MockTransport
from tests.support.sample_plugins import AuthPlugin, AuthRequest, AuthResponse


@pytest.fixture
async def manager(auth_plugin: AuthPlugin) -> Any:
    async with AsyncPluginManager(AuthRequest, AuthResponse) as m:
        await m.register(auth_plugin)
        yield m


async def test_execute_returns_the_typed_response(manager: AsyncPluginManager[AuthRequest, AuthResponse]) -> None:
    assert await manager.execute("auth", AuthRequest("u1", "good")) == AuthResponse(valid=True, user_id="u1")


async def test_a_bad_request_is_refused_with_1205_naming_the_field(
    manager: AsyncPluginManager[AuthRequest, AuthResponse], auth_plugin: AuthPlugin
) -> None:
    with pytest.raises(plugwire.errors.RequestValidationError) as caught:
        await manager.execute("auth", AuthRequest(user_id=42, token="good"))  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.plugin, caught.value.details["field"]) == (1205, "auth", "user_id")
    assert auth_plugin.calls == 0


async def test_a_bad_response_is_refused_with_1206(manager: AsyncPluginManager[AuthRequest, AuthResponse]) -> None:
    with pytest.raises(plugwire.errors.ResponseValidationError) as caught:
        await manager.execute("auth", AuthRequest("u", "wrong-shape"))
    assert (caught.value.code, caught.value.details["field"]) == (1206, "valid")


async def test_a_plugin_that_raises_gives_1203_with_the_cause(
    manager: AsyncPluginManager[AuthRequest, AuthResponse],
) -> None:
    with pytest.raises(plugwire.ExecutionError) as caught:
        await manager.execute("auth", AuthRequest("u", "boom"))
    assert caught.value.code == 1203
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "database unreachable" in str(caught.value)


async def test_an_unknown_plugin_is_1201(manager: AsyncPluginManager[AuthRequest, AuthResponse]) -> None:
    with pytest.raises(plugwire.PluginNotFoundError) as caught:
        await manager.execute("nope", AuthRequest("u", "good"))
    assert (caught.value.code, caught.value.plugin) == (1201, "nope")
    with pytest.raises(plugwire.PluginNotFoundError):
        manager.get_plugin("nope")
    with pytest.raises(plugwire.PluginNotFoundError):
        await manager.unregister("nope")


async def test_a_manager_that_was_shut_down_cannot_be_entered_again(auth_plugin: AuthPlugin) -> None:
    manager = plugwire.simple(AuthRequest, AuthResponse).with_plugin("auth", plugwire.in_process(auth_plugin)).build()
    async with manager:
        assert (await manager.execute("auth", AuthRequest("u", "good"))).valid
    with pytest.raises(plugwire.errors.ManagerClosedError) as caught:
        async with manager:
            pass
    assert caught.value.code == 1208
    assert "cannot be started again" in caught.value.message


async def test_an_unknown_name_suggests_the_closest_registered_plugin() -> None:
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(AuthPlugin(), name="auth")
        with pytest.raises(plugwire.PluginNotFoundError) as caught:
            await manager.execute("auht", AuthRequest("u", "good"))
        assert caught.value.message == "no plugin named 'auht' is registered; did you mean 'auth'?"
        with pytest.raises(plugwire.PluginNotFoundError) as caught:
            await manager.unregister("atuh")
        assert caught.value.message == "no plugin named 'atuh' is registered; did you mean 'auth'?"
        with pytest.raises(plugwire.PluginNotFoundError) as caught:
            manager.get_plugin("billing")
        assert caught.value.message == "no plugin named 'billing' is registered"


async def test_calling_a_manager_that_was_never_started_is_1209_not_1201(auth_plugin: AuthPlugin) -> None:
    manager = plugwire.simple(AuthRequest, AuthResponse).with_plugin("auth", plugwire.in_process(auth_plugin)).build()
    with pytest.raises(plugwire.errors.ManagerNotStartedError) as caught:
        await manager.execute("auth", AuthRequest("u", "good"))
    assert (caught.value.code, caught.value.plugin) == (1209, "auth")
    assert "plugin 'auth' is configured but not registered: the manager was never started" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    with pytest.raises(plugwire.errors.ManagerNotStartedError):
        manager.get_plugin("auth")
    async with manager:
        assert (await manager.execute("auth", AuthRequest("u", "good"))).valid is True
        with pytest.raises(plugwire.PluginNotFoundError):  # started: an unknown name is 1201 again
            await manager.execute("nope", AuthRequest("u", "good"))


async def test_a_manager_with_nothing_to_start_calls_an_unknown_name_1201(auth_plugin: AuthPlugin) -> None:
    manager: AsyncPluginManager[AuthRequest, AuthResponse] = AsyncPluginManager(AuthRequest, AuthResponse)
    await manager.register(auth_plugin)  # registered by hand, never started: start() has nothing to add
    try:
        assert (await manager.execute("auth", AuthRequest("u", "good"))).valid is True
        with pytest.raises(plugwire.PluginNotFoundError) as caught:
            await manager.execute("nope", AuthRequest("u", "good"))
        assert caught.value.code == 1201
    finally:
        await manager.shutdown()


async def test_a_disabled_plugin_is_1202_and_never_started(
    manager: AsyncPluginManager[AuthRequest, AuthResponse],
) -> None:
    await manager.register(AuthPlugin("off"), config=PluginConfig(name="off", enabled=False))
    never = plugwire.subprocess("/nonexistent/plugin")  # would fail to spawn if it were started
    await manager.register(never, config=PluginConfig(name="never", executable="x", enabled=False))
    with pytest.raises(plugwire.errors.PluginDisabledError) as caught:
        await manager.execute("off", AuthRequest("u", "good"))
    assert caught.value.code == 1202
    with pytest.raises(plugwire.errors.PluginDisabledError):
        manager.get_plugin("never")
    assert manager.list_plugins()["never"].status is Status.OFFLINE
    assert (await manager.health())["off"].message == "disabled in config; not started"
    assert "off" in manager
    with pytest.raises(plugwire.errors.PluginAlreadyRegisteredError):
        await manager.register(AuthPlugin("off"))
    await manager.unregister("off")
    assert await manager.graceful_unregister("never") is True
    assert "off" not in manager


async def test_registering_a_duplicate_name_is_1010(manager: AsyncPluginManager[AuthRequest, AuthResponse]) -> None:
    with pytest.raises(plugwire.errors.PluginAlreadyRegisteredError) as caught:
        await manager.register(AuthPlugin())
    assert caught.value.code == 1010


async def test_register_takes_the_name_from_config_or_argument() -> None:
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(AuthPlugin("inner"), name="outer")
        await manager.register(AuthPlugin("inner"), config=PluginConfig(name="configured"))
        assert sorted(manager.list_plugins()) == ["configured", "outer"]
        assert manager.get_plugin("outer").info().name == "inner"


async def test_register_refuses_a_source_without_a_name() -> None:
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        with pytest.raises(plugwire.ConfigError) as caught:
            await manager.register(MockTransport(lambda call: b""))
        assert caught.value.code == 1004


async def test_unregister_closes_the_plugin_and_forgets_it(auth_plugin: AuthPlugin) -> None:
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(auth_plugin)
        await manager.unregister("auth")
        assert auth_plugin.closed == 1
        assert "auth" not in manager
        assert len(manager) == 0


async def test_shutdown_closes_every_plugin_exactly_once_and_is_idempotent() -> None:
    plugins = [AuthPlugin(f"p{i}") for i in range(3)]
    manager: AsyncPluginManager[AuthRequest, AuthResponse] = AsyncPluginManager(AuthRequest, AuthResponse)
    async with manager:
        for plugin in plugins:
            await manager.register(plugin)
    await manager.shutdown()
    await asyncio.gather(manager.shutdown(), manager.aclose())
    assert [p.closed for p in plugins] == [1, 1, 1]
    with pytest.raises(plugwire.errors.ManagerClosedError) as caught:
        await manager.execute("p0", AuthRequest("u", "good"))
    assert caught.value.code == 1208
    with pytest.raises(plugwire.errors.ManagerClosedError):
        await manager.register(AuthPlugin("late"))


class GatedPlugin(AuthPlugin):
    def __init__(self) -> None:
        super().__init__("gated")
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
        self.entered.set()
        await self.release.wait()
        return AuthResponse(valid=True, user_id=request.user_id)


async def test_shutdown_waits_for_in_flight_calls_before_closing() -> None:
    plugin = GatedPlugin()
    manager: AsyncPluginManager[AuthRequest, AuthResponse] = AsyncPluginManager(AuthRequest, AuthResponse)
    await manager.start()
    await manager.register(plugin)
    call = asyncio.create_task(manager.execute("gated", AuthRequest("u", "x")))
    await plugin.entered.wait()
    stopping = asyncio.create_task(manager.shutdown(timeout=30))
    await asyncio.sleep(0)
    assert plugin.closed == 0
    assert not stopping.done()
    plugin.release.set()
    assert (await call).valid is True
    await stopping
    assert plugin.closed == 1


async def test_shutdown_closes_anyway_after_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    plugin = GatedPlugin()
    manager: AsyncPluginManager[AuthRequest, AuthResponse] = AsyncPluginManager(AuthRequest, AuthResponse)
    await manager.register(plugin)
    call = asyncio.create_task(manager.execute("gated", AuthRequest("u", "x")))
    await plugin.entered.wait()
    with caplog.at_level(logging.WARNING, "plugwire.manager"):
        report = await manager.shutdown(timeout=0.01)
    assert plugin.closed == 1
    assert "still running" in caplog.text
    # The call still running at the timeout was cancelled with 1211 (docs/lifecycle.md).
    assert report.cut == {"gated": 1}
    with pytest.raises(plugwire.errors.DrainCancelledError):
        await call


async def test_a_call_times_out_with_1204_and_is_cancelled_in_the_plugin() -> None:
    cancelled = asyncio.Event()

    class Slow(AuthPlugin):
        async def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            raise AssertionError("unreachable")

    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(Slow("slow"))
        with pytest.raises(plugwire.PluginTimeoutError) as caught:
            await manager.execute("slow", AuthRequest("u", "x"), ExecutionContext(timeout=0.01))
        assert caught.value.code == 1204
        assert caught.value.retryable is True
        assert cancelled.is_set()


async def test_the_request_id_is_generated_or_kept() -> None:
    seen: list[str] = []

    class Recorder(AuthPlugin):
        async def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
            seen.append(ctx.request_id)
            return AuthResponse(valid=True)

    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(Recorder())
        await manager.execute("auth", AuthRequest("u", "x"))
        await manager.execute_with_options("auth", ExecutionContext(request_id="req-7"), AuthRequest("u", "x"))
    assert len(seen[0]) == 32
    assert seen[1] == "req-7"


async def test_health_checks_every_plugin_and_list_plugins_reports_the_last_result() -> None:
    class Sick(AuthPlugin):
        async def health(self) -> plugwire.HealthStatus:
            raise ConnectionError("db down")

    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(AuthPlugin())
        await manager.register(Sick("sick"))
        assert manager.list_plugins()["auth"].message == "started; not checked yet"
        report = await manager.health()
        assert report["auth"].status is Status.HEALTHY
        assert report["auth"].message == "db ok"
        assert report["auth"].response_time > 0
        assert report["sick"].status is Status.DEGRADED  # one failure of failure_limit=3
        assert "db down (1 of 3)" in report["sick"].message
        assert manager.list_plugins() == report
        assert (await manager.get_plugin("sick").health()).status is Status.DEGRADED


async def test_a_hung_health_check_is_unhealthy_at_its_timeout() -> None:
    class Hung(AuthPlugin):
        async def health(self) -> plugwire.HealthStatus:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    config = PluginConfig(name="hung", health_check=plugwire.HealthCheckConfig(timeout=0.01))
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(Hung(), config=config)
        report = await manager.health()
    assert report["hung"].status is Status.DEGRADED
    assert "timed out after 0.01s (1 of 3)" in report["hung"].message


async def test_the_plugin_handle_calls_through_the_manager(auth_plugin: AuthPlugin) -> None:
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(auth_plugin)
        handle = manager.get_plugin("auth")
        assert handle.info() == auth_plugin.info()
        assert (await handle.execute(ExecutionContext(), AuthRequest("u", "good"))).valid
        assert (await handle.health()).status is Status.HEALTHY
        await handle.close()
        assert "auth" not in manager


async def test_sync_plugin_methods_run_in_worker_threads() -> None:
    import threading

    class Blocking:
        def info(self) -> PluginInfo:
            return PluginInfo(name="blocking")

        def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
            return AuthResponse(valid=True, user_id=threading.current_thread().name)

    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(Blocking())
        response = await manager.execute("blocking", AuthRequest("u", "x"))
    assert response.user_id.startswith("plugwire-plugin")


async def test_the_codec_can_be_turned_off_for_in_process_plugins(auth_plugin: AuthPlugin) -> None:
    request = AuthRequest("u", "good")
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(plugwire.in_process(auth_plugin, codec=False), name="fast")
        assert await manager.execute("fast", request) == AuthResponse(valid=True, user_id="u")


async def test_json_codec_works_end_to_end(auth_plugin: AuthPlugin) -> None:
    transport = MockTransport(lambda call: call.payload)
    async with AsyncPluginManager(AuthRequest, AuthRequest, codec="json") as manager:
        await manager.register(transport, name="echo")
        assert await manager.execute("echo", AuthRequest("u", "t")) == AuthRequest("u", "t")
    assert transport.calls[0].payload == b'{"user_id":"u","token":"t"}'
    assert transport.calls[0].codec == "json"
    assert transport.closed


async def test_a_transport_bug_is_wrapped_as_1203() -> None:
    def broken(call: Any) -> bytes:
        raise KeyError("internal")

    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(MockTransport(broken), name="broken")
        with pytest.raises(plugwire.ExecutionError) as caught:
            await manager.execute("broken", AuthRequest("u", "x"))
    assert caught.value.plugin == "broken"


async def test_a_plugin_error_from_the_transport_passes_through_with_the_plugin_name() -> None:
    def refuse(call: Any) -> bytes:
        raise plugwire.TransportError("pipe closed", code=1302)

    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(MockTransport(refuse), name="t")
        with pytest.raises(plugwire.TransportError) as caught:
            await manager.execute("t", AuthRequest("u", "x"))
    assert (caught.value.code, caught.value.plugin) == (1302, "t")


async def test_user_policies_wrap_every_call() -> None:
    seen: list[str] = []

    class Tagger:
        async def __call__(self, call: plugwire.testing.Call, call_next: Any) -> Any:
            seen.append(call.context.request_id)
            return await call_next(call)

    async with AsyncPluginManager(AuthRequest, AuthResponse, policies=[Tagger()]) as manager:
        await manager.register(AuthPlugin())
        await manager.execute("auth", AuthRequest("u", "good"), ExecutionContext(request_id="r1"))
    assert seen == ["r1"]


async def test_any_logger_with_level_methods_can_be_used() -> None:
    class ListLogger:
        def __init__(self) -> None:
            self.lines: list[tuple[str, str]] = []

        def debug(self, msg: str, /, *args: Any, **kwargs: Any) -> None:
            self.lines.append(("debug", msg))

        def info(self, msg: str, /, *args: Any, **kwargs: Any) -> None:
            self.lines.append(("info", msg))

        def warning(self, msg: str, /, *args: Any, **kwargs: Any) -> None:
            self.lines.append(("warning", msg))

        def error(self, msg: str, /, *args: Any, **kwargs: Any) -> None:
            self.lines.append(("error", msg))

    logger = ListLogger()
    async with AsyncPluginManager(AuthRequest, AuthResponse, logger=logger) as manager:
        await manager.register(AuthPlugin())
    assert ("info", "registered plugin 'auth' (in-process, auth 1.2.3)") in logger.lines
    assert logger.lines[-1] == ("info", "shutdown complete (1 plugins closed)")


async def test_a_broken_logger_never_breaks_a_call(caplog: pytest.LogCaptureFixture) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("logger down")

    async with AsyncPluginManager(AuthRequest, AuthResponse, logger=Exploding()) as manager:  # type: ignore[arg-type]
        await manager.register(AuthPlugin())
        assert (await manager.execute("auth", AuthRequest("u", "good"))).valid
    assert "the configured logger failed" in caplog.text


async def test_load_config_refuses_in_process_plugins_described_in_files(tmp_path: Path) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text("plugins:\n  - name: inproc\n    transport: in-process\n")
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        with pytest.raises(plugwire.ConfigError, match=r"register it with manager\.register"):
            await manager.load_config(path)


async def test_config_plugins_are_registered_on_start() -> None:
    config = ManagerConfig(plugins=(PluginConfig(name="x", transport=plugwire.Transport.IN_PROCESS),))
    manager: AsyncPluginManager[AuthRequest, AuthResponse] = AsyncPluginManager(AuthRequest, AuthResponse, config)
    with pytest.raises(plugwire.ConfigError):
        async with manager:
            pass
    with pytest.raises(plugwire.errors.ManagerClosedError):
        await manager.register(AuthPlugin())


async def test_graceful_unregister_drains_in_flight_calls_then_closes() -> None:
    plugin = GatedPlugin()
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(plugin)
        running = asyncio.create_task(manager.execute("gated", AuthRequest("u", "x")))
        await plugin.entered.wait()
        draining = asyncio.create_task(manager.graceful_unregister("gated", timeout=30))
        await asyncio.sleep(0)
        with pytest.raises(plugwire.PluginNotFoundError):
            await manager.execute("gated", AuthRequest("u", "x"))
        assert plugin.closed == 0
        plugin.release.set()
        assert (await running).valid is True
        assert await draining is True
        assert plugin.closed == 1
        replacement = AuthPlugin("gated")
        await manager.register(replacement)
        assert (await manager.execute("gated", AuthRequest("u", "good"))).valid


async def test_graceful_unregister_gives_up_after_its_timeout() -> None:
    plugin = GatedPlugin()
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(plugin)
        running = asyncio.create_task(manager.execute("gated", AuthRequest("u", "x")))
        await plugin.entered.wait()
        assert await manager.graceful_unregister("gated", timeout=0.01) is False
        assert plugin.closed == 1
        with pytest.raises(plugwire.PluginNotFoundError):
            await manager.graceful_unregister("gated")
        plugin.release.set()
        await running


def test_graceful_unregister_from_the_blocking_twin() -> None:
    with plugwire.PluginManager(AuthRequest, AuthResponse) as manager:
        manager.register(AuthPlugin())
        assert manager.graceful_unregister("auth", timeout=5) is True
        assert manager.list_plugins() == {}


async def test_health_asked_while_the_plugin_is_removed_reports_it_offline_instead_of_raising() -> None:
    entered = asyncio.Event()

    class SlowHealth(AuthPlugin):
        async def health(self) -> plugwire.HealthStatus:
            entered.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(SlowHealth("slow"))
        asking = asyncio.create_task(manager.health())
        await entered.wait()
        await manager.unregister("slow")
        report = await asking
    assert report["slow"].status is Status.OFFLINE
    assert "removed" in report["slow"].message


async def test_objects_that_are_not_plugins_are_refused_with_coded_errors() -> None:
    class NoInfo:
        async def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:
            raise AssertionError("unreachable")

    class InfoRaises(AuthPlugin):
        def info(self) -> PluginInfo:
            raise RuntimeError("db down")

    class InfoMapping(AuthPlugin):
        def info(self) -> PluginInfo:
            return {"name": "x", "colour": "red"}  # type: ignore[return-value]

    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        with pytest.raises(plugwire.errors.InvalidPluginError) as not_a_plugin:
            await manager.register(NoInfo())
        assert isinstance(not_a_plugin.value, TypeError)
        assert not_a_plugin.value.code == plugwire.errors.ErrorCode.CONFIG_WRONG_TYPE
        with pytest.raises(plugwire.ExecutionError, match="info\\(\\) raised RuntimeError: db down"):
            await manager.register(InfoRaises())
        with pytest.raises(plugwire.errors.InvalidPluginError, match="not a PluginInfo"):
            await manager.register(InfoMapping())


async def test_context_headers_and_metadata_must_be_strings(auth_plugin: AuthPlugin) -> None:
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(auth_plugin)
        bad = ExecutionContext(metadata={"attempt": 3})  # type: ignore[dict-item]
        with pytest.raises(plugwire.errors.RequestValidationError) as caught:
            await manager.execute("auth", AuthRequest("u", "good"), bad)
        assert caught.value.code == 1205
        assert "metadata['attempt']" in caught.value.message
        assert auth_plugin.calls == 0
        good = ExecutionContext(headers={"traceparent": "00-abc"}, metadata={"tenant": "t1"})
        assert (await manager.execute("auth", AuthRequest("u", "good"), good)).valid


async def test_configured_plugins_start_in_priority_order() -> None:
    started: list[str] = []

    def recorder(name: str) -> MockTransport:
        async def start() -> PluginInfo:
            started.append(name)
            return PluginInfo(name=name)

        transport = MockTransport(lambda call: b"")
        transport.start = start  # type: ignore[method-assign]
        return transport

    manager: AsyncPluginManager[AuthRequest, AuthResponse] = AsyncPluginManager(AuthRequest, AuthResponse)
    for name, priority in (("late", 5), ("first", -1), ("middle", 0), ("also-middle", 0)):
        config = PluginConfig(name=name, priority=priority, transport=plugwire.Transport.IN_PROCESS)
        manager._queue(recorder(name), config)
    async with manager:
        pass
    assert started == ["first", "middle", "also-middle", "late"]


def test_the_configs_log_level_sets_plugwires_stdlib_loggers() -> None:
    logger = logging.getLogger("plugwire")
    before = logger.level
    try:
        AsyncPluginManager(AuthRequest, AuthResponse, ManagerConfig(log_level="warning"))
        assert logger.level == logging.WARNING
        AsyncPluginManager(AuthRequest, AuthResponse, ManagerConfig(log_level="debug"), logger=logging.getLogger("x"))
        assert logger.level == logging.WARNING  # a logger of the application's own: left alone
    finally:
        logger.setLevel(before)


async def test_a_slow_start_reserves_its_name_without_blocking_other_plugins() -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    slow = MockTransport(lambda call: b"")

    async def gated_start() -> PluginInfo:
        started.set()
        await release.wait()
        return PluginInfo(name="slow")

    slow.start = gated_start  # type: ignore[method-assign]
    async with AsyncPluginManager(AuthRequest, AuthResponse) as manager:
        await manager.register(AuthPlugin("other"))
        registering = asyncio.create_task(manager.register(slow, name="slow"))
        await started.wait()
        with pytest.raises(plugwire.errors.PluginAlreadyRegisteredError):
            await manager.register(MockTransport(lambda call: b""), name="slow")
        await manager.unregister("other")  # not held up by the start in progress
        assert "slow" not in manager
        release.set()
        await registering
        assert "slow" in manager
