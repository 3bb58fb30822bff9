"""A stdio plugin on uvloop (`serve(loop=...)`, `PLUGWIRE_LOOP`): the same behaviour as on asyncio.

The behaviour tests of the SDK server are collected again here with `PLUGWIRE_LOOP=uvloop` in
the environment the test plugins get, so each runs with the plugin on a uvloop event loop.
"""

from __future__ import annotations

import sys

import msgspec
import pytest

import plugwire
from plugwire._sdk.serve import loop_factory_for
from plugwire.testing import check_plugin
from tests.support.procguard import EXAMPLES, PLUGINS, HandDriver, manager_for, plugin_env, python_plugin

uvloop = pytest.importorskip("uvloop")

# Collected again under this module, with the plugin on uvloop (see `_plugins_on_uvloop`).
from tests.integration.sdk.test_call_tasks import (  # noqa: E402
    driver,
    test_a_call_runs_inside_one_task_with_asyncio_timeout_usable,
    test_a_context_variable_set_by_one_call_is_not_seen_by_the_next,
    test_many_quick_calls_leave_no_call_in_flight_at_shutdown,
)
from tests.integration.sdk.test_serve import (  # noqa: E402
    test_a_passed_deadline_answers_a_retryable_timeout,
    test_a_plugin_also_works_over_two_plain_pipes,
    test_cancel_stops_the_call_without_an_answer,
    test_end_of_input_stops_the_plugin_cleanly,
    test_max_concurrency_bounds_the_calls_running_at_once,
    test_plain_def_calls_run_in_a_bounded_thread_pool,
    test_shutdown_cancels_calls_that_outlive_the_grace,
    test_sigterm_finishes_in_flight_calls_then_closes_and_exits_0,
    test_the_handshake_answers_with_version_codec_and_info,
)

__all__ = [
    "driver",
    "test_a_call_runs_inside_one_task_with_asyncio_timeout_usable",
    "test_a_context_variable_set_by_one_call_is_not_seen_by_the_next",
    "test_a_passed_deadline_answers_a_retryable_timeout",
    "test_a_plugin_also_works_over_two_plain_pipes",
    "test_cancel_stops_the_call_without_an_answer",
    "test_end_of_input_stops_the_plugin_cleanly",
    "test_many_quick_calls_leave_no_call_in_flight_at_shutdown",
    "test_max_concurrency_bounds_the_calls_running_at_once",
    "test_plain_def_calls_run_in_a_bounded_thread_pool",
    "test_shutdown_cancels_calls_that_outlive_the_grace",
    "test_sigterm_finishes_in_flight_calls_then_closes_and_exits_0",
    "test_the_handshake_answers_with_version_codec_and_info",
]

pytestmark = pytest.mark.usefixtures("no_leaks")

ECHO = [sys.executable, str(PLUGINS / "echo_plugin.py")]


@pytest.fixture(autouse=True)
def _plugins_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGWIRE_LOOP", "uvloop")  # procguard's plugin_env passes it on


def test_the_environment_variable_puts_the_plugin_on_uvloop_with_calls_in_real_tasks() -> None:
    hand = HandDriver(ECHO)
    try:
        hand.hello()
        hand.send({"type": "call", "id": 1, "payload": {"op": "loop"}})
        assert hand.recv()["payload"]["text"] == "uvloop|True"
    finally:
        hand.close()


def test_without_the_environment_variable_the_plugin_stays_on_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLUGWIRE_LOOP")
    hand = HandDriver(ECHO)
    try:
        hand.hello()
        hand.send({"type": "call", "id": 1, "payload": {"op": "loop"}})
        assert hand.recv()["payload"]["text"] == "asyncio.unix_events|True"
    finally:
        hand.close()


class EchoReq(msgspec.Struct):
    op: str = "echo"
    text: str = ""
    seconds: float = 0.0


class EchoResp(msgspec.Struct):
    text: str
    pid: int = 0


async def test_a_host_puts_a_subprocess_plugin_on_uvloop_through_its_configured_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PLUGWIRE_LOOP")  # only the configured env below carries it
    async with manager_for(EchoReq, EchoResp) as manager:
        await manager.register(
            python_plugin("echo_plugin.py", PLUGWIRE_LOOP="uvloop"), config=plugwire.PluginConfig(name="echo")
        )
        assert (await manager.execute("echo", EchoReq(op="loop"))).text == "uvloop|True"
        assert (await manager.execute("echo", EchoReq(text="hi"))).text == "hi"
        assert (await manager.health())["echo"].status is plugwire.Status.HEALTHY


def test_64_concurrent_calls_on_uvloop_all_answer_with_their_own_text() -> None:
    hand = HandDriver(ECHO)
    try:
        hand.hello()
        for i in range(1, 65):
            hand.send({"type": "call", "id": i, "payload": {"op": "sleep", "seconds": 0.05, "text": f"t{i}"}})
        replies = {r["id"]: r["payload"]["text"] for r in (hand.recv() for _ in range(64))}
        assert replies == {i: f"t{i}" for i in range(1, 65)}
    finally:
        hand.close()


def test_an_sdk_plugin_on_uvloop_passes_the_conformance_checker() -> None:
    report = check_plugin(
        [sys.executable, str(EXAMPLES / "text_stats.py")], request={"text": "One. Two."}, env=plugin_env()
    )
    assert report.ok, str(report)
    assert report.failures == (), str(report)


def test_loop_choices_map_to_factories() -> None:
    assert loop_factory_for("asyncio") is None
    assert loop_factory_for("uvloop") is uvloop.new_event_loop
    assert loop_factory_for("auto") is uvloop.new_event_loop


def test_an_unknown_loop_is_a_coded_config_error() -> None:
    with pytest.raises(plugwire.ConfigError) as info:
        loop_factory_for("trio")
    assert info.value.code == plugwire.errors.ErrorCode.CONFIG_INVALID_VALUE
    assert "trio" in str(info.value)


def test_without_uvloop_auto_falls_back_and_uvloop_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert loop_factory_for("auto") is None
    with pytest.raises(plugwire.errors.MissingDependencyError) as info:
        loop_factory_for("uvloop")
    assert info.value.code == plugwire.errors.ErrorCode.MISSING_DEPENDENCY
    assert "pip install 'plugwire[uvloop]'" in str(info.value)
