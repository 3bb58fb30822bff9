"""`plugwire.run`: main runs to its end, or SIGTERM/SIGINT stops it as Ctrl-C would and the
manager shuts down gracefully. (A real host process receiving SIGTERM: tests/integration/transports/
test_host_death.py.)"""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest

import plugwire
from tests.support.sample_plugins import AuthPlugin, AuthRequest, AuthResponse


def test_main_runs_to_its_end_and_the_previous_signal_handlers_come_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    async def main() -> str:
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
        return "done"

    assert plugwire.run(main) == "done"
    assert plugwire.run(main()) == "done"
    assert plugwire.run(lambda: 42) == 42

    class Host:
        async def __call__(self) -> str:
            return "called"

    assert plugwire.run(Host()) == "called"
    assert {sig: signal.getsignal(sig) for sig in before} == before


@pytest.mark.parametrize(("signum", "expected"), [(signal.SIGTERM, SystemExit), (signal.SIGINT, KeyboardInterrupt)])
def test_a_stop_signal_cancels_async_main_whose_manager_shuts_down_gracefully(
    signum: signal.Signals, expected: type[BaseException]
) -> None:
    plugin = AuthPlugin()
    unwound: list[str] = []

    async def main() -> None:
        async with plugwire.AsyncPluginManager(AuthRequest, AuthResponse) as manager:
            await manager.register(plugin)
            assert (await manager.execute("auth", AuthRequest("u", "good"))).valid
            signal.raise_signal(signum)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                unwound.append("cancelled")
                raise

    with pytest.raises(expected) as caught:
        plugwire.run(main)
    assert unwound == ["cancelled"]
    assert plugin.closed == 1
    if isinstance(caught.value, SystemExit):
        assert caught.value.code == 128 + signal.SIGTERM


def test_a_stop_signal_interrupts_blocking_main_whose_manager_closes_gracefully() -> None:
    plugin = AuthPlugin()

    def main() -> None:
        with plugwire.PluginManager(AuthRequest, AuthResponse) as manager:
            manager.register(plugin)
            signal.raise_signal(signal.SIGTERM)
            threading.Event().wait()

    with pytest.raises(SystemExit) as caught:
        plugwire.run(main)
    assert caught.value.code == 128 + signal.SIGTERM
    assert plugin.closed == 1


def test_a_main_that_handles_the_stop_itself_returns_its_value() -> None:
    async def main() -> str:
        signal.raise_signal(signal.SIGTERM)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "stopped cleanly"
        return "not reached"

    assert plugwire.run(main) == "stopped cleanly"


def test_a_second_signal_while_stopping_stops_at_once() -> None:
    async def main() -> None:
        signal.raise_signal(signal.SIGTERM)
        try:
            await asyncio.Event().wait()
        finally:
            signal.raise_signal(signal.SIGTERM)  # told again while cleaning up
            await asyncio.Event().wait()

    with pytest.raises(KeyboardInterrupt):
        plugwire.run(main)


def test_off_the_main_thread_signals_are_left_alone() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    async def main() -> None:
        seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=plugwire.run, args=(main,))
    thread.start()
    thread.join()
    assert seen == [before]
