"""A call that may have reached the plugin runs once unless it is idempotent (issue 15, item 1).

A real plugin process records every `execute` in a ledger file before it works, so each test
counts how often a call really ran. `simple()` keeps its default retries throughout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import plugwire
from plugwire import ExecutionContext, PluginTimeoutError
from plugwire._transports._pool import RestartPolicy
from plugwire._transports.subprocess import SubprocessOptions, SubprocessTransport
from plugwire.errors import RequestSent
from tests.support.plugins.ledger_plugin import Done, Job
from tests.support.procguard import eventually, python_plugin

pytestmark = pytest.mark.usefixtures("no_leaks")


def ledger_manager(ledger: Path, **env: str) -> plugwire.AsyncPluginManager[Job, Done]:
    """`simple()` with a 0.5 s timeout and the default retries, over the ledger plugin."""
    source = python_plugin("ledger_plugin.py", LEDGER=str(ledger), **env)
    return plugwire.simple(Job, Done).with_timeout(0.5).with_plugin("ledger", source).build()


def executions(ledger: Path, op: str) -> int:
    return sum(1 for line in ledger.read_text().splitlines() if line.endswith(f" {op}"))


async def test_a_call_that_timed_out_after_it_was_sent_runs_once(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    async with ledger_manager(ledger) as manager:
        with pytest.raises(PluginTimeoutError) as caught:
            await manager.execute("ledger", Job(op="slow", seconds=30))

    # Each attempt wrote its line at once, long (0.5 s) before it timed out: a retry would show.
    assert executions(ledger, "slow") == 1
    assert caught.value.request_sent is RequestSent.MAYBE
    assert caught.value.code == 1204
    assert "attempts" not in caught.value.details  # no second attempt was made
    assert str(caught.value) == (
        "[1204] no answer within 0.5s (not retried: the request may have reached the plugin and the call is not"
        " idempotent) (plugin 'ledger')"
    )


async def test_an_idempotent_call_that_timed_out_is_retried(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    async with ledger_manager(ledger) as manager:
        with pytest.raises(PluginTimeoutError) as caught:
            await manager.execute("ledger", Job(op="slow", seconds=30), ExecutionContext(idempotent=True))

    assert executions(ledger, "slow") == 4  # the first attempt and simple()'s three retries
    assert caught.value.details["attempts"] == 4
    assert str(caught.value).startswith("[1204] no answer within 0.5s (4 attempts in ")


async def test_a_plugin_whose_calls_are_idempotent_has_them_retried(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    source = python_plugin("ledger_plugin.py", LEDGER=str(ledger))
    builder = plugwire.simple(Job, Done).with_timeout(0.5).with_retry(idempotent=True, initial_interval=0.01)
    async with builder.with_plugin("ledger", source).build() as manager:
        with pytest.raises(PluginTimeoutError):
            await manager.execute("ledger", Job(op="slow", seconds=30))
    assert executions(ledger, "slow") == 4


async def test_a_crash_mid_call_is_not_retried_and_a_call_not_yet_sent_is(tmp_path: Path) -> None:
    """While the crashed plugin restarts (slowly: 1.5 s), a call waits for it; an attempt that
    times out waiting never reached the plugin, so it is retried until the plugin is back."""
    ledger = tmp_path / "ledger.txt"
    async with ledger_manager(ledger, SLOW_RESTART="1.5") as manager:
        with pytest.raises(plugwire.OutcomeUnknownError) as crashed:
            await manager.execute("ledger", Job(op="crash"))
        assert crashed.value.request_sent is RequestSent.MAYBE

        with pytest.raises(PluginTimeoutError) as waited:
            await manager.execute("ledger", Job(op="echo"), ExecutionContext(max_retries=0))
        assert waited.value.request_sent is RequestSent.NO
        assert "could not be sent within 0.5s" in str(waited.value)

        answer = await manager.execute("ledger", Job(op="echo"), ExecutionContext(max_retries=50))

    assert answer.ran == 1  # the restarted process ran this call, once
    assert executions(ledger, "crash") == 1
    assert executions(ledger, "echo") == 1


@pytest.mark.parametrize("op", ["refuse-once", "fail-once"])
async def test_a_retryable_error_the_plugin_answers_is_retried(tmp_path: Path, op: str) -> None:
    """The plugin answered: its `retryable` is its word that repeating the call is right."""
    ledger = tmp_path / "ledger.txt"
    async with ledger_manager(ledger) as manager:
        answer = await manager.execute("ledger", Job(op=op))
    assert answer.ran == 2
    assert executions(ledger, op) == 2


async def test_the_plugins_own_timeout_leaves_the_outcome_unknown_and_is_not_retried(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    async with ledger_manager(ledger) as manager:
        with pytest.raises(PluginTimeoutError) as caught:
            await manager.execute("ledger", Job(op="own-timeout"))
        assert caught.value.request_sent is RequestSent.MAYBE
        assert caught.value.code == 1204
        assert executions(ledger, "own-timeout") == 1
        with pytest.raises(PluginTimeoutError) as again:
            await manager.execute("ledger", Job(op="own-timeout"), ExecutionContext(max_retries=1, idempotent=True))
    assert again.value.details["attempts"] == 2
    assert executions(ledger, "own-timeout") == 3


async def test_a_call_still_waiting_for_the_plugin_to_read_earlier_writes_was_not_sent(tmp_path: Path) -> None:
    """A plugin that reads nothing: once the host's buffer is full, a call waits to write its
    request; its timeout there says `NO` and the plugin cannot have seen it."""
    options = SubprocessOptions(
        grace=0.5, kill_after=0.5, write_timeout=5.0, restart=RestartPolicy(initial_backoff=0.01)
    )
    config = plugwire.PluginConfig(name="raw", retry=plugwire.RetryConfig(max_retries=0))
    async with plugwire.AsyncPluginManager(Job, Done) as manager:
        await manager.register(python_plugin("raw_plugin.py", "no-read", options=options), config=config)
        transport = manager._entries["raw"].transport
        assert isinstance(transport, SubprocessTransport)
        assert transport.pool is not None
        conn = transport.pool.workers[0].conn
        big = Job(op="x" * (900 * 1024))
        stuck = [asyncio.ensure_future(manager.execute("raw", big)) for _ in range(8)]
        await eventually(lambda: conn.must_wait)

        with pytest.raises(PluginTimeoutError) as caught:
            await manager.execute("raw", Job(), ExecutionContext(timeout=0.2))
        assert caught.value.request_sent is RequestSent.NO
        assert str(caught.value) == "[1204] the request could not be sent within 0.2s (plugin 'raw')"
        for call in stuck:
            call.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
