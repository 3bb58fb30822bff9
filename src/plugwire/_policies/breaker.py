"""Circuit breaker: stop calling a failing plugin, then let a few trial calls test it.

```
          failure_threshold consecutive failures,
          at least min_request_threshold calls seen
  CLOSED ─────────────────────────────────────────▶ OPEN ◀──────────────┐
    ▲                                               │ recovery_timeout   │ any trial fails
    │ success_threshold trials succeed              ▼ has passed         │ or outlives its timeout
    └──────────────────────────────────────────── HALF-OPEN ─────────────┘
                                    (admits exactly success_threshold trials)
```

Every transition starts a new generation; a result is counted only if it arrives in the
generation its call was admitted in, so a late result never causes a second transition.

One event is one failure: calls that fail because of the same underlying error (the ends
of their `__cause__` chains are one object, as for every call lost when a plugin process
exits, or when one incident takes several processes of a pool) count once.
When the plugin's supervisor reports a fresh process that passed its handshake and a health
check (`recovered()`), an open breaker moves to half-open at once instead of waiting out
`recovery_timeout`, so trial calls find the new process.
"""

from __future__ import annotations

import collections
import enum
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .._clock import Clock, system_clock
from .._config import CircuitBreakerConfig
from .._errors import (
    AuthenticationError,
    CircuitBreakerError,
    CircuitOpenError,
    ConfigError,
    ManagerClosedError,
    PluginDisabledError,
    PluginNotFoundError,
    RateLimitError,
    RequestValidationError,
)
from .._types import LoggerLike

__all__ = [
    "BreakerListener",
    "BreakerState",
    "BreakerStateChange",
    "CircuitBreaker",
    "ErrorClassifier",
    "Ticket",
    "default_error_classifier",
]

Ticket = tuple[int, int | None]
"""What `CircuitBreaker.admit` hands an admitted call: the breaker's generation then, and a
trial id in the half-open state (None otherwise). The call's result is recorded against it."""


class BreakerState(enum.StrEnum):
    """Where a circuit breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class BreakerStateChange:
    """One transition of a circuit breaker.

    Attributes:
        plugin: The plugin whose breaker changed.
        old: The state it left.
        new: The state it entered.
        at: The breaker clock's `monotonic()` time of the change.
        reason: Why, in words.
    """

    plugin: str
    old: BreakerState
    new: BreakerState
    at: float
    reason: str


class BreakerListener(Protocol):
    """Told about every state change. A listener that raises is logged and removed."""

    def __call__(self, change: BreakerStateChange, /) -> None: ...


class ErrorClassifier(Protocol):
    """Decides whether an error a call raised counts as a failure of the plugin."""

    def __call__(self, error: Exception, /) -> bool: ...


# Errors that say the caller (or the host) was wrong, not the plugin.
_CALLER_ERRORS: tuple[type[Exception], ...] = (
    RequestValidationError,
    AuthenticationError,
    ConfigError,
    PluginNotFoundError,
    PluginDisabledError,
    ManagerClosedError,
    RateLimitError,
    CircuitBreakerError,
)


def default_error_classifier(error: Exception) -> bool:
    """The default rule: everything counts except caller errors.

    Bad requests (1205), authentication (11xx), configuration (10xx), not found or disabled
    plugins, a closed manager and rate-limit or breaker refusals do not count; execution
    failures, timeouts, unknown outcomes, bad responses, transport, process and protocol
    errors, and exceptions that are not `PluginError`s do. Cancellation never reaches a
    classifier: it is never a failure.
    """
    return not isinstance(error, _CALLER_ERRORS)


def _root_cause(error: BaseException) -> BaseException:
    """The end of `error`'s `__cause__` chain (bounded: a chain can be made circular)."""
    for _ in range(16):
        cause = error.__cause__
        if cause is None:
            break
        error = cause
    return error


class CircuitBreaker:
    """The state machine of one plugin's circuit breaker (see the module docstring).

    Args:
        config: Thresholds and the recovery timeout.
        plugin: The plugin's name, for errors and logs.
        clock: Where time comes from.
        classifier: Which errors count as failures.
        listeners: Told about every state change.
        logger: Where state changes are logged; defaults to `plugwire.breaker`.

    Attributes:
        transitions: How many times each (old, new) transition happened.
        closed_ticket: While closed, the ticket every call is admitted with (one object per
            closed period), so that admitting a call needs no method call on the hot path:
            ``breaker.closed_ticket or breaker.admit()``; None while open or half-open.
    """

    def __init__(
        self,
        config: CircuitBreakerConfig,
        *,
        plugin: str = "",
        clock: Clock = system_clock,
        classifier: ErrorClassifier = default_error_classifier,
        listeners: Iterable[BreakerListener] = (),
        logger: LoggerLike | None = None,
    ) -> None:
        self.config = config
        self.plugin = plugin
        self.clock = clock
        self.classifier = classifier
        self.listeners: list[BreakerListener] = list(listeners)
        self.logger: LoggerLike = logger or logging.getLogger("plugwire.breaker")
        self.transitions: collections.Counter[tuple[BreakerState, BreakerState]] = collections.Counter()
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._calls = 0  # counted results in this closed period
        self._failures = 0  # consecutive failures in this closed period
        self._opened_at = 0.0
        self._trial_ids = itertools.count()
        self._trials: dict[int, float] = {}  # in-flight trial id -> its deadline
        self._trials_admitted = 0
        self._trial_successes = 0
        self._last_event: BaseException | None = None  # the cause of the last counted failure
        self.closed_ticket: Ticket | None = (0, None)

    # ------------------------------------------------------------------ reading
    @property
    def state(self) -> BreakerState:
        """The state now (an elapsed recovery timeout or trial timeout is applied first)."""
        self._tick(self.clock.monotonic())
        return self._state

    @property
    def trips(self) -> int:
        """How many times the breaker opened."""
        return sum(count for (_, new), count in self.transitions.items() if new is BreakerState.OPEN)

    @property
    def generation(self) -> int:
        """Increases by one on every transition."""
        return self._generation

    # ---------------------------------------------------------------- admitting
    def admit(self, trial_timeout: float | None = None) -> Ticket:
        """Let a call through or refuse it.

        A trial (half-open) is one verdict on the plugin: its caller makes a single attempt.
        While closed this reads no clock and allocates nothing (it runs on every call).

        Args:
            trial_timeout: How long a trial admitted now may run before it counts as failed
                (default: the recovery timeout).

        Returns:
            The call's ticket for `record_success`/`record_failure`: the generation, and a
            trial id in the half-open state.

        Raises:
            CircuitOpenError: The circuit is open, or half-open with every trial slot taken.
        """
        if self.closed_ticket is not None:
            return self.closed_ticket
        now = self.clock.monotonic()
        self._tick(now)  # time alone never closes a breaker
        if self._state is BreakerState.HALF_OPEN and self._trials_admitted < self.config.success_threshold:
            self._trials_admitted += 1
            trial = next(self._trial_ids)
            limit = trial_timeout if trial_timeout else self.config.recovery_timeout
            self._trials[trial] = now + limit
            return self._generation, trial
        if self._state is BreakerState.OPEN:
            retry_after = self._opened_at + self.config.recovery_timeout - now
            raise CircuitOpenError(
                f"circuit open; retry after {retry_after:.3f}s",
                plugin=self.plugin,
                details={"retry_after": retry_after, "state": self._state.value},
            )
        retry_after = max(0.0, min(self._trials.values(), default=now) - now)
        raise CircuitOpenError(
            "circuit half-open and its trial calls are in flight",
            plugin=self.plugin,
            details={"retry_after": retry_after, "state": self._state.value},
        )

    def record_success(self, ticket: Ticket) -> None:
        """Count a success of the call admitted with `ticket` (ignored from an earlier generation)."""
        if ticket is self.closed_ticket:  # the common case, closed all along: no clock
            self._calls += 1
            self._failures = 0
            return
        self.record(ticket, None)

    def record_failure(self, ticket: Ticket, error: BaseException) -> None:
        """Count the call admitted with `ticket` as failed with `error`, if it is a failure of
        the plugin: the classifier decides; calls lost to one underlying error count once;
        cancellation never counts. Ignored from an earlier generation."""
        self.record(ticket, error)

    def record(self, ticket: Ticket, error: BaseException | None) -> None:
        """Count the result of an admitted call (`error` None for a success).

        A result from an earlier generation is ignored.
        """
        generation, trial = ticket
        if self._state is not BreakerState.CLOSED:  # nothing elapses on its own while closed
            self._tick(self.clock.monotonic())
        if generation != self._generation:
            return
        if error is None:
            outcome: bool | None = True
        elif isinstance(error, Exception):
            outcome = False if self._classify(error) else None
            if outcome is False and error.__cause__ is not None:
                event = _root_cause(error)
                if event is self._last_event:  # another call lost to a failure already counted
                    outcome = None
                self._last_event = event
        else:  # cancellation and interpreter exits are never the plugin's failure
            outcome = None
        if trial is None:
            self._record_closed(outcome)
        else:
            self._record_trial(trial, outcome)

    def _classify(self, error: Exception) -> bool:
        try:
            return bool(self.classifier(error))
        except Exception:  # a broken classifier must not hide the call's own error
            logging.getLogger("plugwire.breaker").exception(
                "error classifier %r raised; counting a failure", self.classifier
            )
            return True

    def _record_closed(self, outcome: bool | None) -> None:
        if outcome is None:
            return
        self._calls += 1
        if outcome:
            self._failures = 0
            return
        self._failures += 1
        if self._failures >= self.config.failure_threshold and self._calls >= self.config.min_request_threshold:
            self._transition(
                BreakerState.OPEN,
                f"{self._failures} consecutive failures in {self._calls} calls",
            )

    def _record_trial(self, trial: int, outcome: bool | None) -> None:
        if self._trials.pop(trial, None) is None:
            return
        if outcome is None:  # not a verdict on the plugin: free the slot for another trial
            self._trials_admitted -= 1
        elif not outcome:
            self._transition(BreakerState.OPEN, "a trial call failed")
        else:
            self._trial_successes += 1
            if self._trial_successes >= self.config.success_threshold:
                self._transition(BreakerState.CLOSED, f"{self._trial_successes} trial calls succeeded")

    def recovered(self, reason: str = "the plugin was restarted and passed its health check") -> None:
        """The plugin's supervisor has a fresh process (or connection) that passed its
        handshake and a health check: an open breaker becomes half-open at once, so that the
        next calls are trials of the new process. Closed and half-open breakers are left alone.
        """
        if self._state is BreakerState.OPEN:
            self._transition(BreakerState.HALF_OPEN, reason)

    # -------------------------------------------------------------- transitions
    def _tick(self, now: float) -> None:
        """Apply the transitions that time alone causes."""
        if self._state is BreakerState.OPEN:
            if now >= self._opened_at + self.config.recovery_timeout:
                self._transition(BreakerState.HALF_OPEN, "recovery timeout elapsed", now)
        elif self._state is BreakerState.HALF_OPEN and self._trials and min(self._trials.values()) <= now:
            self._transition(BreakerState.OPEN, "a trial call outlived its timeout", now)

    def _transition(self, new: BreakerState, reason: str, now: float | None = None) -> None:
        at = self.clock.monotonic() if now is None else now
        old = self._state
        self._state = new
        self._generation += 1
        self.closed_ticket = (self._generation, None) if new is BreakerState.CLOSED else None
        self._calls = self._failures = 0
        self._trials.clear()
        self._trials_admitted = self._trial_successes = 0
        if new is BreakerState.OPEN:
            self._opened_at = at
        self.transitions[(old, new)] += 1
        change = BreakerStateChange(self.plugin, old, new, at, reason)
        self._log(change)
        for listener in list(self.listeners):
            try:
                listener(change)
            except Exception:
                self.listeners.remove(listener)
                logging.getLogger("plugwire.breaker").exception(
                    "circuit breaker listener %r raised; it is removed", listener
                )

    def _log(self, change: BreakerStateChange) -> None:
        level = "warning" if change.new is BreakerState.OPEN else "info"
        message = (
            f"circuit breaker of plugin {self.plugin!r}: {change.old.value} -> {change.new.value} ({change.reason})"
        )
        try:
            getattr(self.logger, level)(message)
        except Exception:  # a broken logger must never break a call
            logging.getLogger("plugwire.breaker").exception("the configured logger failed")
