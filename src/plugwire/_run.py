"""`plugwire.run`: run a host's main function until it returns or the host is told to stop
(SIGTERM, SIGINT), so that its `async with` / `with` blocks shut the plugins down gracefully.

Without it, SIGTERM (what `docker stop`, Kubernetes and systemd send) ends a Python host at
once: no `finally` runs, and its plugins die by the parent-death signal without their
`close()`. `run` turns the first SIGTERM or SIGINT into what Ctrl-C does in asyncio: the main
task is cancelled (`asyncio.run` does this for SIGINT only), or, for a blocking main function,
`KeyboardInterrupt` is raised where it is; a second signal stops at once.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, Final, TypeVar, overload

__all__ = ["STOP_SIGNALS", "run"]

T = TypeVar("T")

#: The signals `run` turns into a graceful stop.
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

_Handler = Callable[[int, FrameType | None], Any] | int | None


@overload
def run(
    main: Coroutine[Any, Any, T],
    /,
    *,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T: ...
@overload
def run(
    main: Callable[[], Coroutine[Any, Any, T]],
    /,
    *,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T: ...
@overload
def run(
    main: Callable[[], T],
    /,
    *,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T: ...
def run(
    main: Any,
    /,
    *,
    debug: bool | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> Any:
    """Run a host until `main` returns, or until SIGTERM or SIGINT stops it gracefully.

    `plugwire.run(main)` with `async def main()` (or `plugwire.run(main())`, in place of
    `asyncio.run(main())`) runs it on a new event loop; with a plain `def main()` (a host
    using the blocking `PluginManager`) it calls it in this thread.

    The first SIGTERM or SIGINT stops `main` as Ctrl-C would: an async main's task is
    cancelled, a blocking main gets `KeyboardInterrupt` where it is (a `PluginManager` call
    waiting then cancels its call). Its `async with manager:` / `with manager:` blocks exit,
    so the manager shuts down as usual: in-flight calls get `shutdown_timeout`, then every
    plugin gets the `shutdown` frame and its `close()` runs. A second signal stops at once.

    Signals are handled only when `run` is called from the main thread (where Python runs
    signal handlers); the previous handlers are restored when it returns.

    Args:
        main: An async function, a coroutine, or a plain function, taking no arguments.
        debug: The event loop's debug mode (async only), as for `asyncio.run`.
        loop_factory: Makes the event loop (async only), as for `asyncio.Runner`; e.g.
            `uvloop.new_event_loop`.

    Returns:
        What `main` returned (also when it caught the stop and returned on its own).

    Raises:
        KeyboardInterrupt: `main` was stopped by SIGINT (as `asyncio.run` raises it).
        SystemExit: `main` was stopped by SIGTERM: exit status 143 (128 + SIGTERM), what a
            shell reports for a process ended by SIGTERM, after a graceful stop.
    """
    if inspect.iscoroutine(main):
        return _run_async(main, debug, loop_factory)
    if inspect.iscoroutinefunction(main) or inspect.iscoroutinefunction(getattr(main, "__call__", None)):  # noqa: B004
        return _run_async(main(), debug, loop_factory)
    return _run_blocking(main)


class _Stop:
    """Which stop signal came first; while installed, the first one calls `on_first` and a
    second one raises `KeyboardInterrupt`."""

    def __init__(self, on_first: Callable[[], None]) -> None:
        self.signum: int | None = None
        self._on_first = on_first
        self._previous: dict[int, _Handler] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # told twice: stop now
        self.signum = signum
        self._on_first()

    def stopped(self) -> BaseException:
        """The exception `run` raises for a main function the signal stopped."""
        if self.signum == signal.SIGINT:
            return KeyboardInterrupt()
        return SystemExit(128 + (self.signum or signal.SIGTERM))


def _run_async(
    coro: Coroutine[Any, Any, T], debug: bool | None, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> T:
    main_task: list[asyncio.Task[T]] = []

    def cancel_main() -> None:  # in the loop's thread, between two bytecodes of the loop
        if main_task and not main_task[0].done():
            main_task[0].cancel()
        loop.call_soon_threadsafe(lambda: None)  # wake the loop if it is waiting in select()

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        main_task.append(task)
        if stop.signum is not None:  # the signal came before `main` began
            coro.close()
            raise asyncio.CancelledError
        return await coro

    with asyncio.Runner(debug=debug, loop_factory=loop_factory) as runner:
        loop = runner.get_loop()
        with _Stop(cancel_main) as stop:  # installed first, so the runner leaves SIGINT to it
            try:
                return runner.run(main())
            except asyncio.CancelledError:
                if stop.signum is None:
                    raise
                raise stop.stopped() from None


def _run_blocking(function: Callable[[], T]) -> T:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with _Stop(interrupt) as stop:
        try:
            return function()
        except KeyboardInterrupt:
            if stop.signum is None or stop.signum == signal.SIGINT:
                raise
            raise stop.stopped() from None
