"""Reading a plugin's answer right after the request went out, when it is already there.

When the host and a plugin share one CPU (pinned together, a one-CPU container, a busy
machine), the plugin woken by our `send()` usually runs before that call returns to us: its
answer is already in the socket. Read then, a call finishes without going back to the event
loop (no `epoll_wait` to learn that the socket is readable, no second loop turn to resume the
caller: `await` on a done future does not suspend). Whether the woken plugin runs first is
the kernel's choice, and it depends on how much CPU each side used lately (with every policy
off, the host's lighter calls let the plugin run first on only about a quarter of them); so
when the first read finds nothing, the host yields the CPU once (`sched_yield`, which lets a
plugin waiting on this CPU answer; the event loop would have given the CPU up anyway, by
sleeping in `epoll_wait`) and reads again. Where the plugin runs on another CPU both reads
find nothing; after a few misses in a row it stops trying for a while, then tries again.

It reads ahead only when nothing else is due in the current loop turn: when other callbacks
are queued (a burst of calls started together by `gather`), answering the first call at once
would make each of the others go out alone, a switch to the plugin and back per call, instead
of together in one write at the end of the turn.

Only on the standard library's selector loops, whose socket transport reads the same socket
and shrugs off finding it empty (`_seam.ready_queue`, which also hands over the loop's queue);
the bytes go through the connection's own buffered-protocol methods, exactly as if the
transport had read them. The plain reference path is no `ReadAhead` at all (`read_ahead_for`
returns None: accelerators off, another loop): the answer waits for the loop's next read.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sized
from typing import Final, Protocol

from .._seam import ready_queue

__all__ = ["ReadAhead", "read_ahead_for"]

_yield = getattr(os, "sched_yield", lambda: None)  # POSIX; elsewhere, no second chance

MISSES: Final = 4
"""Writes in a row whose answer was not there (even after yielding) after which reading ahead pauses."""
PAUSE: Final = 1024
"""Writes without reading ahead after `MISSES` misses."""


class _Reader(Protocol):
    def get_buffer(self, sizehint: int) -> memoryview: ...

    def buffer_updated(self, nbytes: int) -> None: ...


class ReadAhead:
    """Tries a non-blocking read of `sock` into `reader` after each write (and, if it finds
    nothing, a second one after yielding the CPU).

    Args:
        sock: The connection's socket (the one its transport reads).
        reader: The connection, as a buffered protocol.
        due: What else the loop will run in this turn (its queue of ready callbacks).
    """

    __slots__ = ("_misses", "_reader", "_recv_into", "due", "hits", "paused")

    def __init__(self, sock: socket.socket, reader: _Reader, due: Sized = ()) -> None:
        self._recv_into = sock.recv_into
        self._reader = reader
        self.due = due  # the connection also holds a write back while it is not empty
        self._misses = 0
        self.hits = 0
        self.paused = 0  # writes left before the next try

    def after_write(self) -> None:
        """The request just went out: take the answer if the plugin already wrote it."""
        if self.due:
            return  # more is due in this turn (maybe more calls): let them go out together
        if self.paused:
            self.paused -= 1
            return
        reader = self._reader
        try:
            try:
                count = self._recv_into(reader.get_buffer(-1))
            except (BlockingIOError, InterruptedError):
                _yield()  # let a plugin woken on this CPU run and answer
                count = self._recv_into(reader.get_buffer(-1))
        except (BlockingIOError, InterruptedError):
            self._misses += 1
            if self._misses >= MISSES:
                self._misses = 0
                self.paused = PAUSE
            return
        except OSError:
            return  # a broken socket: the transport's own read reports it
        if not count:
            return  # end of input stays readable: the transport sees it too
        self._misses = 0
        self.hits += 1
        reader.buffer_updated(count)


def read_ahead_for(sock: socket.socket, reader: _Reader) -> ReadAhead | None:
    """A `ReadAhead` when the running loop is one of the standard library's selector loops
    and the accelerators are on; else None (the plain path)."""
    due = ready_queue(asyncio.get_running_loop())
    return None if due is None else ReadAhead(sock, reader, due)
