"""Watch a whitelist file for changes: `watchfiles` when installed, polling otherwise.

The watcher watches the file's folder, not the file: editors save by writing a new file and
renaming it over the old one, and Kubernetes swaps a ConfigMap by re-pointing a symlink, and
both replace the inode a file watch would be attached to. Any event in the folder triggers a
re-read; the caller compares content, so spurious events cost one small read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["WhitelistWatcher", "watchfiles_available"]

_LOG = logging.getLogger("plugwire.security")


def watchfiles_available() -> bool:
    """Whether the optional `watchfiles` package (`pip install 'plugwire[watch]'`) is installed."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


class WhitelistWatcher:
    """Calls `on_change()` soon (well within 1 s) after anything changes in `path`'s folder.

    Args:
        path: The whitelist file.
        on_change: Awaited after each change (one at a time; changes during a call are
            coalesced into one more call).
        use_watchfiles: True to require `watchfiles`, False to poll, None to use it if
            installed.
        poll_interval: Seconds between polls in the polling fallback.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_change: Callable[[], Awaitable[None]],
        *,
        use_watchfiles: bool | None = None,
        poll_interval: float = 0.2,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self._on_change = on_change
        self.backend = (
            "watchfiles" if (watchfiles_available() if use_watchfiles is None else use_watchfiles) else "poll"
        )
        if self.backend == "watchfiles" and not watchfiles_available():
            from .._errors import ErrorCode, MissingDependencyError

            raise MissingDependencyError(
                "watching with watchfiles needs: pip install 'plugwire[watch]'", code=ErrorCode.MISSING_DEPENDENCY
            )
        self._poll_interval = poll_interval
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching; returns once the watch is in place (changes after it are seen)."""
        if self._task is None:
            runner = self._watch_events if self.backend == "watchfiles" else self._poll
            self._task = asyncio.create_task(runner(), name=f"plugwire-watch:{self.path.name}")
            ready = asyncio.ensure_future(self._ready.wait())
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if self._task.done():
                self._task.result()

    async def _notify(self) -> None:
        try:
            await self._on_change()
        except Exception:  # a failing reload must not end the watch
            _LOG.exception("whitelist change handler failed")

    async def _watch_events(self) -> None:
        import watchfiles

        folder = self.path.parent
        # Rust's notify backend starts watching when the generator is first stepped; a short
        # debounce keeps reloads well under a second after the last write.
        watcher = watchfiles.awatch(
            folder,
            stop_event=self._stop,
            debounce=50,
            step=20,
            recursive=False,
            yield_on_timeout=True,
            rust_timeout=100,
        )
        async for changes in watcher:
            if self._stop.is_set():
                break
            if not self._ready.is_set():
                # The first yield means the OS watch is in place; re-read once to catch a
                # change made between loading the whitelist and this point.
                self._ready.set()
                await self._notify()
            elif changes:
                await self._notify()

    def _signature(self) -> tuple[int, ...] | None:
        try:
            info = os.stat(self.path)  # follows symlinks: a swapped target has a new inode
            folder = os.stat(self.path.parent)
        except OSError:
            return None
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, folder.st_mtime_ns)

    async def _poll(self) -> None:
        last = self._signature()
        self._ready.set()
        await self._notify()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._stop.wait()
            current = self._signature()
            if current != last:
                last = current
                await self._notify()

    async def aclose(self) -> None:
        """Stop watching and wait for the watch task to end."""
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            # Returned, not raised: the task's own end; a cancellation of our caller still propagates.
            await asyncio.gather(task, return_exceptions=True)
