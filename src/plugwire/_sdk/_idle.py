"""Waiting for the host's next frame inside the read that answered the last one.

On one CPU, a plugin answering calls one at a time spends an event-loop turn per call doing
nothing useful: the loop waits in its epoll, then calls the transport's reader, which calls
the server. `IdleWait` waits in that same epoll from inside the reader and reads the socket
itself, while nothing else in the loop could run meanwhile; anything else that becomes ready
(the loop's wake-up pipe, which signals and other threads write to, or another file) or a
timer falling due hands control back to the loop, which sees the same readiness itself
(epoll is level-triggered).

It needs the standard library's selector loop on epoll and reads four of its private
attributes (`_selector`, `_ready`, `_scheduled`, `_stopping`); `IdleWait.attach` checks that
each is there and otherwise returns None, and the server keeps the loop's path.
"""

from __future__ import annotations

import asyncio
import os
import select
import selectors
from typing import Any, Final

__all__ = ["IdleWait"]

_EPOLLIN: Final = getattr(select, "EPOLLIN", 1)
_EPOLL_SELECTOR: Final[Any] = getattr(selectors, "EpollSelector", ())


class IdleWait:
    """Waits for a socket transport's next bytes in its loop's epoll, and reads them."""

    __slots__ = ("_fd", "_loop", "_poll", "_ready", "_scheduled", "_transport")

    def __init__(self, loop: Any, transport: Any, poll: Any, fd: int) -> None:
        self._loop = loop
        self._transport = transport
        self._poll = poll
        self._fd = fd
        self._ready = loop._ready
        self._scheduled = loop._scheduled

    @classmethod
    def attach(cls, loop: asyncio.AbstractEventLoop, transport: asyncio.BaseTransport) -> IdleWait | None:
        """An `IdleWait` for `transport`, when the loop and transport allow it: the standard
        library's loop on an epoll selector, not in debug mode, and a socket transport."""
        selector = getattr(loop, "_selector", None)
        sock = transport.get_extra_info("socket")
        epoll = getattr(selector, "_selector", None)
        if (
            not isinstance(selector, _EPOLL_SELECTOR)
            or epoll is None
            or loop.get_debug()
            or sock is None
            or not all(hasattr(loop, name) for name in ("_ready", "_scheduled", "_stopping"))
            or not all(hasattr(transport, name) for name in ("is_reading", "get_write_buffer_size"))
        ):
            return None
        return cls(loop, transport, epoll.poll, sock.fileno())

    def readable(self) -> bool:
        """Wait until the socket alone is readable: True. False at once when the loop has
        anything to do (a callback due, stopping, the transport not reading or with bytes
        still to write), and as soon as anything else is ready or the next timer is due."""
        loop = self._loop
        transport = self._transport
        if self._ready or loop._stopping or not transport.is_reading() or transport.get_write_buffer_size():
            return False
        scheduled = self._scheduled
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
