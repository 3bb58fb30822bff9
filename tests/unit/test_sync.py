from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import plugwire
from plugwire import ExecutionContext, PluginManager, Status
from tests.support.plugins.lifecycle_plugin import Req, Resp
from tests.support.procguard import python_plugin
from tests.support.sample_plugins import AuthPlugin, AuthRequest, AuthResponse


def manager_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "plugwire-manager"]


def test_the_blocking_twin_registers_executes_and_closes_its_thread() -> None:
    before = len(manager_threads())
    plugin = AuthPlugin()
    with PluginManager(AuthRequest, AuthResponse) as manager:
        manager.register(plugin)
        assert manager.execute("auth", AuthRequest("u", "good")) == AuthResponse(valid=True, user_id="u")
        assert manager.execute_with_options("auth", ExecutionContext(timeout=5), AuthRequest("u", "bad")).valid is False
        assert manager.health()["auth"].status is Status.HEALTHY
        assert manager.list_plugins()["auth"].message == "db ok"
        handle = manager.get_plugin("auth")
        assert handle.info().version == "1.2.3"
        assert handle.execute(ExecutionContext(), AuthRequest("h", "good")).user_id == "h"
        assert handle.health().status is Status.HEALTHY
        assert len(manager_threads()) == before + 1
    assert plugin.closed == 1
    assert len(manager_threads()) == before


def test_coded_errors_cross_the_thread_boundary_unchanged() -> None:
    with PluginManager(AuthRequest, AuthResponse) as manager:
        manager.register(AuthPlugin())
        with pytest.raises(plugwire.PluginNotFoundError) as caught:
            manager.execute("missing", AuthRequest("u", "good"))
        assert caught.value.code == 1201
        manager.unregister("auth")
        assert manager.list_plugins() == {}


def test_the_blocking_twin_never_started_says_so_with_1209() -> None:
    plugin = plugwire.PluginConfig(name="auth", transport=plugwire.Transport.IN_PROCESS)
    config = plugwire.ManagerConfig(plugins=(plugin,))
    manager: PluginManager[AuthRequest, AuthResponse] = PluginManager(AuthRequest, AuthResponse, config)
    try:
        with pytest.raises(plugwire.errors.ManagerNotStartedError) as caught:
            manager.execute("auth", AuthRequest("u", "good"))
        assert caught.value.code == 1209
        assert "never started" in str(caught.value)
    finally:
        manager.close()


def test_many_threads_can_call_at_once() -> None:
    with PluginManager(AuthRequest, AuthResponse) as manager:
        manager.register(AuthPlugin())
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: manager.execute("auth", AuthRequest(str(i), "good")), range(64)))
    assert [r.user_id for r in results] == [str(i) for i in range(64)]


def test_calls_after_close_fail_with_1208_and_close_is_idempotent() -> None:
    manager: PluginManager[AuthRequest, AuthResponse] = PluginManager(AuthRequest, AuthResponse)
    manager.close()
    manager.close()
    with pytest.raises(plugwire.errors.ManagerClosedError):
        manager.execute("auth", AuthRequest("u", "good"))


def test_load_config_and_start_go_through_the_private_loop(tmp_path: object) -> None:
    config = plugwire.ManagerConfig()
    with PluginManager(AuthRequest, AuthResponse, config) as manager:
        manager.load_config(config)
        manager.start()
        assert manager.async_manager.config is config


def test_a_failing_start_closes_the_thread() -> None:
    before = len(manager_threads())
    config = plugwire.ManagerConfig(plugins=(plugwire.PluginConfig(name="x", transport=plugwire.Transport.IN_PROCESS),))
    with pytest.raises(plugwire.ConfigError), PluginManager(AuthRequest, AuthResponse, config):
        pass
    assert len(manager_threads()) == before


def test_the_blocking_twin_refuses_calls_from_its_own_loop_thread() -> None:
    with PluginManager(AuthRequest, AuthResponse) as manager:

        class Reentrant(AuthPlugin):
            def execute(self, ctx: ExecutionContext, request: AuthRequest) -> AuthResponse:  # type: ignore[override]
                raise AssertionError("not reached")

        async def call_from_loop() -> str:
            try:
                manager.list_plugins()
            except RuntimeError as exc:
                return str(exc)
            return "no error"

        assert "own loop thread" in manager._call(call_from_loop())


def test_the_blocking_twin_shows_breakers_and_security_like_the_async_manager() -> None:
    with PluginManager(AuthRequest, AuthResponse) as manager:
        manager.register(AuthPlugin())
        assert manager.circuit_breaker_state("auth") is plugwire.policies.BreakerState.CLOSED
        assert manager.security is None
        assert "auth" in manager
        assert len(manager) == 1
        with pytest.raises(plugwire.PluginNotFoundError):
            manager.circuit_breaker_state("missing")
        manager.get_plugin("auth").close()
        assert "auth" not in manager


def test_closing_while_other_threads_call_never_leaves_a_caller_hanging() -> None:
    manager: PluginManager[AuthRequest, AuthResponse] = PluginManager(AuthRequest, AuthResponse)
    manager.register(AuthPlugin())
    outcomes: list[str] = []
    started = threading.Barrier(5)

    def caller() -> None:
        started.wait()
        for _ in range(200):
            try:
                manager.execute("auth", AuthRequest("u", "good"))
                outcomes.append("ok")
            except plugwire.errors.ManagerClosedError:
                outcomes.append("closed")
                return

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    manager.close()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert set(outcomes) <= {"ok", "closed"}
    assert outcomes.count("closed") <= len(threads)  # each caller stops at its first refusal


class InterruptWhenHeld(logging.Handler):
    """Sends SIGINT to the main thread (as Ctrl-C would) once the plugin logs that it holds
    a call; runs on the manager's loop thread, where the plugin's log records arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.sent and record.getMessage().startswith("holding "):
            self.sent = True
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def test_ctrl_c_while_a_blocking_call_waits_cancels_that_call_so_leaving_the_with_is_quick() -> None:
    # Leaving the `with` would wait up to an hour for a call still in flight: the test's
    # timeout is the proof that none is.
    config = plugwire.ManagerConfig(shutdown_timeout=3600)
    plugin = plugwire.PluginConfig(
        name="hold", connection=plugwire.ConnectionConfig(max_connections=1, request_timeout=3600)
    )
    handler = InterruptWhenHeld()
    logger = logging.getLogger("plugwire.plugin.hold")
    logger.addHandler(handler)
    # Ctrl-C raises KeyboardInterrupt, as in a terminal: a shell starts a background job (a
    # CI step, `make test &`) with SIGINT ignored, and Python keeps an inherited SIG_IGN.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with PluginManager(Req, Resp, config) as manager:
            manager.register(python_plugin("lifecycle_plugin.py"), config=plugin)
            with pytest.raises(KeyboardInterrupt):
                manager.execute("hold", Req(op="hold"))
            assert handler.sent
            assert manager.execute("hold", Req(op="cancelled")).text == "1"  # the plugin saw the cancel
    finally:
        signal.signal(signal.SIGINT, previous)
        logger.removeHandler(handler)
