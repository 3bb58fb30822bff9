"""Waiting for the host's next frame inside the read that answered the last one.

On one CPU, a plugin answering calls one at a time spends an event-loop turn per call doing
nothing useful: the loop waits in its epoll, then calls the transport's reader, which calls
the server. `IdleWait` waits in that same epoll from inside the reader and reads the socket
itself, while nothing else in the loop could run meanwhile; anything else that becomes ready
(the loop's wake-up pipe, which signals and other threads write to, or another file) or a
timer falling due hands control back to the loop, which sees the same readiness itself
(epoll is level-triggered).

It needs the standard library's selector loop on epoll and four of its private attributes,
which `_seam.loop_internals` hands over after checking each; without them (another loop,
debug mode, the accelerators off) `IdleWait.attach` returns None and the server keeps the
loop's path, the plain reference path.
"""

from __future__ import annotations

import asyncio
import os
import select
from typing import Any, Final

from .._seam import LoopInternals, loop_internals

__all__ = ["IdleWait"]

_EPOLLIN: Final = getattr(select, "EPOLLIN", 1)


class IdleWait:
    """Waits for a socket transport's next bytes in its loop's epoll, and reads them."""

    __slots__ = ("_due", "_fd", "_is_stopping", "_loop", "_poll", "_timers", "_transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: Any, internals: LoopInternals, fd: int) -> None:
        self._loop = loop
        self._transport = transport
        self._due = internals.ready
        self._timers = internals.timers
        self._is_stopping = internals.stopping
        self._poll = internals.poll
        self._fd = fd

    @classmethod
    def attach(cls, loop: asyncio.AbstractEventLoop, transport: asyncio.BaseTransport) -> IdleWait | None:
        """An `IdleWait` for `transport`, when the loop and transport allow it: the standard
        library's loop on an epoll selector, not in debug mode, and a socket transport."""
        internals = loop_internals(loop)
        sock = transport.get_extra_info("socket")
        if (
            internals is None
            or sock is None
            or not all(hasattr(transport, name) for name in ("is_reading", "get_write_buffer_size"))
        ):
            return None
        return cls(loop, transport, internals, sock.fileno())

    def readable(self) -> bool:
        """Wait until the socket alone is readable: True. False at once when the loop has
        anything to do (a callback due, stopping, the transport not reading or with bytes
        still to write), and as soon as anything else is ready or the next timer is due."""
        loop = self._loop
        transport = self._transport
        if self._due or self._is_stopping(loop) or not transport.is_reading() or transport.get_write_buffer_size():
            return False
        scheduled = self._timers
        timeout = -1.0
        if scheduled:
            timeout = scheduled[0].when() - loop.time()
            if timeout <= 0:
                return False
        events = self._poll(timeout)
        return len(events) == 1 and events[0] == (self._fd, _EPOLLIN)

    def read_into(self, buffer: memoryview) -> int:
        """Read what the socket holds into `buffer`; 0 at its end or on an error (which the
        transport's own next read meets, and handles, the same way)."""
        try:
            return os.readv(self._fd, (buffer,))
        except OSError:  # including EAGAIN after a spurious wake-up: the loop reads again
            return 0
