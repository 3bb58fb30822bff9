"""How a plugin's supervisor counts crashes: the restart policy and crash incidents.

A crash incident is one event that took processes down. The processes that were running
before it began and are lost within `incident_window` seconds of its first loss (one OOM
kill, one signal to the process group) belong to it, however many there are; a process
started after it began is a new incident when it dies, and so is a restart that fails. The
restart intensity counts incidents, not dead processes.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from .._clock import Clock
from .._errors import PluginError

__all__ = ["CrashIncidents", "RestartPolicy"]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a crashed plugin is restarted.

    Attributes:
        initial_backoff: Seconds before the first restart of an empty pool.
        max_backoff: The longest wait between restarts.
        multiplier: Growth of the wait per incident within the window (and of the wait
            between tries to bring an offline plugin back).
        max_restarts: Incidents tolerated within `window`; one more marks the plugin offline.
        window: Seconds over which incidents are counted; also the wait before an offline
            plugin is first tried again.
        incident_window: Seconds after an incident's first loss within which the losses of
            processes started before it count as the same incident.
        max_offline_backoff: The longest wait between tries to bring an offline plugin back.
    """

    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    max_restarts: int = 5
    window: float = 60.0
    incident_window: float = 1.0
    max_offline_backoff: float = 600.0

    def backoff(self, recent: int) -> float:
        """The wait before restarting an empty pool after `recent` incidents in the window."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** max(recent - 1, 0))

    def offline_backoff(self, tries: int) -> float:
        """The wait before try `tries + 1` to bring an offline plugin back."""
        return min(self.max_offline_backoff, max(self.window, self.initial_backoff) * self.multiplier**tries)


@dataclass(frozen=True, slots=True)
class _Incident:
    start: float
    adopted: int  # processes adopted by the pool before it began: only those can be part of it
    error: PluginError  # the error of its first loss


class CrashIncidents:
    """The incidents of one pool within the policy's window.

    Args:
        policy: The window, the incident window and the intensity limit.
        clock: Where time comes from.
    """

    def __init__(self, policy: RestartPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self._starts: collections.deque[float] = collections.deque()
        self._latest: _Incident | None = None

    def __len__(self) -> int:
        """Incidents within the window (as of the latest one)."""
        return len(self._starts)

    def join(self, seq: int, adopted: int, reason: PluginError) -> bool:
        """Put the loss of a process into the latest incident, or start a new one (True).

        Args:
            seq: The lost process's adoption number (the pool's count when it was adopted).
            adopted: How many processes the pool has adopted so far.
            reason: Why the process was lost: the cause of the errors of its lost calls.

        A process lost to an incident already under way gets that incident's first error as
        the cause of its `reason` (when it has none), so every call the incident took shares
        one root cause: one failure event for the circuit breaker.
        """
        now = self.clock.monotonic()
        latest = self._latest
        if latest is not None and seq <= latest.adopted and now - latest.start <= self.policy.incident_window:
            if reason is not latest.error and reason.__cause__ is None:
                reason.__cause__ = latest.error
            return False
        self._latest = _Incident(now, adopted, reason)
        return True

    def record(self) -> bool:
        """Count a new incident; True when it is one more than `max_restarts` in the window."""
        now = self.clock.monotonic()
        self._starts.append(now)
        while self._starts and now - self._starts[0] > self.policy.window:
            self._starts.popleft()
        return len(self._starts) > self.policy.max_restarts

    def record_failed_restart(self) -> bool:
        """Count a restart that failed: an incident of its own (see `record`)."""
        self._latest = None
        return self.record()

    def clear(self) -> None:
        """Forget every incident (the plugin came back from offline)."""
        self._starts.clear()
        self._latest = None
