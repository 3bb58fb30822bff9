"""Telling a stuck plugin from a slow one, looked at only when a call times out; and a plugin
that stopped in the middle of a frame.

A plugin that answers nothing while calls keep timing out is stuck (say, its event loop is
blocked): the connection is broken with 1311 so the pool replaces the process. A slow plugin
whose answers still come, even late, is not. Nothing here runs per call: the answers received
so far are a subtraction (calls sent, minus those still pending, minus those that left the
table unanswered, plus late answers to those), looked at when a call times out or is given up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Protocol

from .._errors import ErrorCode, ProtocolError, TransportError

__all__ = ["STALL_TIMEOUTS", "HalfFrameWatch", "StallWatch"]

STALL_TIMEOUTS: Final = 2
"""Calls that must time out, with no answer from the plugin in between, before it can be stuck."""


class _Buffered(Protocol):
    @property
    def buffered(self) -> int: ...

    def peek(self, limit: int = 64) -> bytes: ...


class StallWatch:
    """Watches one connection's answers for a stall.

    Args:
        loop: The connection's loop (its clock and timers).
        settled: Calls sent so far minus those still pending (answered or given up), plus
            the late answers that came for calls given up.
        stuck: Breaks the connection with the error given.
        name: The plugin's name (for the error).
        stall_timeout: Seconds the plugin may answer nothing while calls time out (at least
            `STALL_TIMEOUTS` of them) before it is stuck; 0: never.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        settled: Callable[[], int],
        stuck: Callable[[TransportError], None],
        name: str,
        stall_timeout: float,
    ) -> None:
        self._loop = loop
        self._settled = settled
        self._stuck = stuck
        self._name = name
        self.stall_timeout = stall_timeout
        #: Calls that left the pending table unanswered (timed out, abandoned).
        self.unanswered = 0
        self._answers_seen = 0
        self._quiet_since = loop.time()
        self._quiet_timeouts = 0
        #: The plugin's answers so far, counted when a call of it last timed out (or was given
        #: up), while none has come since (`suspect`); None otherwise. A plain attribute: the
        #: pool's dispatch reads it for every process it weighs.
        self.silent_since: int | None = None
        self._timer: asyncio.TimerHandle | None = None  # looks again when the bound is reached

    def gave_up(self) -> None:
        """A call timed out (or its caller gave up): stuck (1311) if the plugin has answered
        nothing for `stall_timeout` seconds, over `STALL_TIMEOUTS` such calls.

        Looked at then, and once more when the bound is reached after enough such calls (no
        later call may come to look: an open circuit breaker stops sending). An answer seen
        at one of these moments arrived before it, so the silence measured from that moment
        is never longer than the real one."""
        self.unanswered += 1
        self.silent_since = self._settled() - self.unanswered
        if not self._answered_since_look():
            self._quiet_timeouts += 1
            self._judge()

    def suspect(self) -> bool:
        """Whether the plugin has answered nothing since a call of it last timed out or was
        given up (a health check's answer counts). Only worth asking while `silent_since` is set."""
        mark = self.silent_since
        if mark is None:
            return False
        if self._settled() - self.unanswered != mark:
            self.silent_since = None  # it answered since
            return False
        return True

    def stop(self) -> None:
        """The connection broke: look no more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _answered_since_look(self) -> bool:
        answers = self._settled() - self.unanswered
        if answers == self._answers_seen:
            return False
        self._answers_seen = answers  # it answered since the last look: not stuck
        self._quiet_since = self._loop.time()
        self._quiet_timeouts = 0
        return True

    def _look_again(self) -> None:
        self._timer = None
        if not self._answered_since_look():
            self._judge()

    def _judge(self) -> None:
        if not self.stall_timeout or self._quiet_timeouts < STALL_TIMEOUTS:
            return
        quiet = self._loop.time() - self._quiet_since
        if quiet < self.stall_timeout:
            if self._timer is None:
                self._timer = self._loop.call_at(self._quiet_since + self.stall_timeout, self._look_again)
            return
        self._stuck(
            TransportError(
                f"the plugin answered nothing for {quiet:.1f}s while {self._quiet_timeouts} calls timed out "
                f"(stall_timeout {self.stall_timeout:g}s): it is stuck",
                code=ErrorCode.PLUGIN_STALLED,
                plugin=self._name,
                details={"quiet": quiet, "timeouts": self._quiet_timeouts},
            )
        )


class HalfFrameWatch:
    """Breaks a connection whose plugin stopped in the middle of a frame for `limit` seconds
    (a truncated frame). Armed only when a read ends inside a frame, which is rare: nothing
    per call.

    Args:
        loop: The connection's loop.
        limit: Seconds the rest of a frame may take to come (the connection's `write_timeout`).
        reader: The connection's frame reader (`buffered`, `peek`).
        stuck: Breaks the connection with the error given.
        name: The plugin's name (for the error).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        limit: float,
        reader: _Buffered,
        stuck: Callable[[ProtocolError], None],
        name: str,
    ) -> None:
        self._loop = loop
        self._limit = limit
        self._reader = reader
        self._stuck = stuck
        self._name = name
        self._since = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def partial(self) -> None:
        """A read ended inside a frame: watch that the rest comes."""
        self._since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_later(self._limit, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        buffered = self._reader.buffered
        if not buffered:
            return
        idle = self._loop.time() - self._since
        if idle < self._limit:
            self._timer = self._loop.call_later(self._limit - idle, self._check)
            return
        self._stuck(
            ProtocolError(
                f"the plugin stopped in the middle of a frame ({buffered} bytes received, nothing more "
                f"for {self._limit:g}s): {self._reader.peek(32)!r}",
                code=ErrorCode.FRAME_TRUNCATED,
                plugin=self._name,
            )
        )
