"""The frames a host connection writes to its plugin: each at once (the plain path), or
coalesced (`BatchingOutbox`, the `batching` accelerator of `docs/hot-path.md`).

The batching rule, the same on both ends of the wire: the first frame since the peer last
wrote goes out at once; later ones, in the same loop turn, are held back and leave together
at its end, so a burst of calls (`gather`, many callers) reaches the plugin in one system call
and wakes it once instead of once per frame (on one CPU each wake-up is a full switch to the
plugin and back). One call at a time is never held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from typing import Protocol

from .._seam import fast_paths

__all__ = ["BatchingOutbox", "Outbox", "new_outbox"]


class _AfterWrite(Protocol):
    due: Sized

    def after_write(self) -> None: ...


class _Wakeups(Protocol):
    left: int


class Outbox:
    """Writes each frame at once, and counts the bytes written (a call's frame end).

    Args:
        loop: The connection's loop.
        wakeups: The connection's `Wakeups` (while callers of a read are still to run, a
            batching outbox holds frames back).
    """

    __slots__ = ("_loop", "_wakeups", "corked", "read_ahead", "sent_since_read", "transport", "written")

    def __init__(self, loop: asyncio.AbstractEventLoop, wakeups: _Wakeups) -> None:
        self._loop = loop
        self._wakeups = wakeups
        self.transport: asyncio.WriteTransport | None = None
        #: Bytes written so far, held-back ones included (where each call's frame ends).
        self.written = 0
        #: Frames held back until the end of this loop turn (never, on the plain path).
        self.corked: bytearray | None = None
        #: Whether a frame went out since the plugin last wrote (the connection resets it).
        self.sent_since_read = False
        #: Reads an answer after a write (`_readahead.py`), once the connection has a socket.
        self.read_ahead: _AfterWrite | None = None

    def write(self, data: bytes | bytearray) -> bool:
        """Send a frame. Returns whether it went out now."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        self.written += len(data)
        return True

    def unflushed(self) -> int:
        """Bytes counted as written that never reached the transport (the connection broke)."""
        transport = self.transport
        held = len(self.corked or b"")
        self.corked = None
        if transport is None or transport.is_closing():
            return held
        return held + transport.get_write_buffer_size()


class BatchingOutbox(Outbox):
    """Holds a frame back while frames already went out since the plugin last wrote, or
    (on the standard library's selector loops, `read_ahead.due`) other callbacks are due in
    this loop turn: say, the other callers woken by the answers just read."""

    __slots__ = ()

    def write(self, data: bytes | bytearray) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        corked = self.corked
        sent_now = False
        read_ahead = self.read_ahead
        if corked is not None:
            corked += data
        elif self.sent_since_read or self._wakeups.left or (read_ahead is not None and read_ahead.due):
            self.corked = bytearray(data)
            self._loop.call_soon(self.flush)
        else:
            transport.write(data)
            self.sent_since_read = sent_now = True
        self.written += len(data)
        return sent_now

    def flush(self) -> None:
        """The end of the loop turn: the held-back frames leave together."""
        data, self.corked = self.corked, None
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            if self.read_ahead is not None:
                self.read_ahead.after_write()


def new_outbox(loop: asyncio.AbstractEventLoop, wakeups: _Wakeups) -> Outbox:
    """A `BatchingOutbox` when the `batching` accelerator is on, else the plain `Outbox`."""
    return BatchingOutbox(loop, wakeups) if fast_paths("batching") else Outbox(loop, wakeups)
