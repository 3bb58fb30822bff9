"""Watch a whitelist file for changes: `watchfiles` when installed, polling otherwise.

Editors save by writing a new file and renaming it over the old one, and Kubernetes swaps a
ConfigMap by re-pointing a symlink; both replace the inode a watch on the file itself would
be attached to. So `watchfiles` watches the file's folder, but only events on the file's
own name (or on the first step of the symlink it is read through, `..data` in a ConfigMap)
count: writes to other files there (an audit log beside the whitelist) are ignored, or each
rejected reload's audit row would trigger the next reload. The poller compares the file's own
`stat` (through symlinks). Events are debounced, and the caller compares content, so an
event that changed nothing costs one read and no reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from .._tasks import TaskOwner

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
    """Calls `on_change()` soon (well within 1 s) after `path` changes.

    Args:
        path: The whitelist file.
        on_change: Awaited after each change (one at a time; changes during a call are
            coalesced into one more call).
        use_watchfiles: True to require `watchfiles`, False to poll, None to use it if
            installed.
        poll_interval: Seconds between polls in the polling fallback (a change is reported
            once the file has held still for one poll).
        close_timeout: Seconds `aclose()` lets a change handler in progress finish before it
            cancels it.
        debounce: Seconds `watchfiles` gathers events into one batch (the configuration's
            hot reload sets it from `hot_reload.debounce`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_change: Callable[[], Awaitable[None]],
        *,
        use_watchfiles: bool | None = None,
        poll_interval: float = 0.2,
        close_timeout: float = 10.0,
        debounce: float = 0.05,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        #: The folder the OS watch is on, and whether it covers its subfolders (a subclass
        #: that watches a whole folder, as discovery does, sets both).
        self.folder = self.path.parent
        self.recursive = False
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
        self._debounce_ms = max(1, round(debounce * 1000))
        self._stop = asyncio.Event()
        #: Resolved once the watch is in place (a future, so `start` needs no helper task).
        self._ready: asyncio.Future[None] | None = None
        #: The watch task: shielded, so `aclose` lets a reload in progress finish.
        self._tasks = TaskOwner(f"plugwire-watch-{self.path.name}", close_timeout=close_timeout)
        self._task: asyncio.Task[None] | None = None
        #: Batches of events (or polls) handled so far; tests wait on it, not on time.
        self.checks = 0
        self._checked = asyncio.Condition()

    async def start(self) -> None:
        """Start watching; returns once the watch is in place (changes after it are seen) and
        the file has been re-read once (a change made before it is seen too)."""
        if self._task is None:
            runner = self._watch_events if self.backend == "watchfiles" else self._poll
            self._ready = ready = asyncio.get_running_loop().create_future()
            self._task = task = self._tasks.start(runner(), name="watch", shielded=True)
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()

    def _is_ready(self) -> bool:
        return self._ready is not None and self._ready.done()

    def _set_ready(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def concerns(self, changed: str | os.PathLike[str]) -> bool:
        """Whether an event on `changed` (a path in the watched folder) may change the file:
        the file's own name, or the first step of the relative symlink it is read through."""
        name = Path(changed).name
        if name == self.path.name:
            return True
        try:
            target = os.readlink(self.path)
        except (OSError, ValueError):
            return False
        parts = Path(target).parts
        return not os.path.isabs(target) and bool(parts) and name == parts[0]

    async def wait_checks(self, count: int) -> None:
        """Wait until `count` batches of events (or polls) have been handled in all."""
        async with self._checked:
            await self._checked.wait_for(lambda: self.checks >= count)

    async def _counted(self) -> None:
        async with self._checked:
            self.checks += 1
            self._checked.notify_all()

    async def _notify(self) -> None:
        try:
            await self._on_change()
        except Exception:  # a failing reload must not end the watch
            _LOG.exception("change handler of %s failed", self.path)

    async def _watch_events(self) -> None:
        import watchfiles

        folder = self.folder
        # Rust's notify backend starts watching when the generator is first stepped; a short
        # debounce keeps reloads well under a second after the last write.
        watcher = watchfiles.awatch(
            folder,
            stop_event=self._stop,
            debounce=self._debounce_ms,
            step=20,
            recursive=self.recursive,
            yield_on_timeout=True,
            rust_timeout=100,
        )
        async for changes in watcher:
            if self._stop.is_set():
                break
            if not self._is_ready():
                # The first yield means the OS watch is in place; re-read once to catch a
                # change made between loading the whitelist and this point.
                await self._notify()
                self._set_ready()
            elif changes:
                if [path for _, path in changes if self.concerns(path)]:
                    await self._notify()
                await self._counted()

    def _signature(self) -> tuple[int, ...] | None:
        try:
            info = os.stat(self.path)  # follows symlinks: a swapped target has a new inode
        except OSError:
            return None
        # The file's own facts only: the folder changes with every write of its neighbours.
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    async def _poll(self) -> None:
        # Debounced: a change is reported once the file's stat has held still for a poll, so
        # a file caught half-written is not reloaded (and rejected) before it is complete.
        last, settled = self._signature(), True
        await self._notify()
        self._set_ready()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._stop.wait()
            current = self._signature()
            if current != last:
                last, settled = current, False  # still being written, perhaps: wait a poll
            elif not settled:
                settled = True
                await self._notify()
            await self._counted()

    async def aclose(self) -> None:
        """Stop watching and wait for the watch task to end (a reload in progress finishes);
        idempotent."""
        self._stop.set()
        self._task = None
        await self._tasks.aclose()
