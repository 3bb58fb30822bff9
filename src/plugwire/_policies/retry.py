"""Retry: exponential backoff with full jitter, only for retryable errors, never past the deadline."""

from __future__ import annotations

import random
from collections.abc import Callable

from .._call import Call
from .._clock import Clock, system_clock
from .._config import RetryConfig
from .._errors import PluginError, PluginTimeoutError, RequestSent
from .._models import ExecutionContext

__all__ = ["RetrySchedule", "is_retryable"]


def is_retryable(error: BaseException, context: ExecutionContext, *, idempotent: bool = False) -> bool:
    """Whether a failed attempt may be repeated.

    Only `PluginError`s marked `.retryable` are, and of those a failure whose request may
    have reached the plugin with no answer saying what came of it (`request_sent` is
    `RequestSent.MAYBE`: a timeout after sending, a crash or a cut connection mid-call) only
    when the call is idempotent (`context.idempotent`, or `idempotent`: the plugin's
    `retry.idempotent`): the plugin may have done the work already.
    """
    if not isinstance(error, PluginError) or not error.retryable:
        return False
    return error.request_sent is not RequestSent.MAYBE or context.idempotent or idempotent


class RetrySchedule:
    """When a failed attempt is retried, and after how long: one plugin's retry settings.

    The n-th retry waits ``min(max_interval, initial_interval * multiplier ** (n - 1))``
    seconds, or with `random_jitter` a uniformly random part of that ("full jitter"). A
    retry whose wait would reach the call's deadline (`Call.deadline`, from
    `ExecutionContext.total_timeout`) is not made. `ExecutionContext.max_retries` overrides
    the config's per call. Which failures are retried: `is_retryable`.

    When `next_delay` says the call stops, it has written why into the last error: the
    attempts and their time in its message, ``details["attempts"]`` and
    ``details["elapsed"]`` (seconds) once the call was retried; ``details["retry_stopped"]``
    is ``"deadline"`` when the deadline stopped it, or ``"not idempotent"`` (with "(not
    retried: ...)" in the message) for a retryable failure that may have run.

    It holds no state of a call: one schedule serves every call of its plugin.

    Args:
        config: The plugin's retry settings.
        clock: Where time comes from.
        rng: Returns a float in [0, 1) for the jitter (injectable for tests).
    """

    __slots__ = ("clock", "config", "rng")

    def __init__(
        self, config: RetryConfig, clock: Clock = system_clock, *, rng: Callable[[], float] = random.random
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng

    def max_retries_for(self, context: ExecutionContext) -> int:
        """Retries this call may make: `ExecutionContext.max_retries`, else the config's."""
        return self.config.max_retries if context.max_retries is None else context.max_retries

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number `retry` (1 for the first retry)."""
        config = self.config
        try:
            grown = config.initial_interval * config.multiplier ** (retry - 1)
        except OverflowError:
            grown = config.max_interval
        return min(config.max_interval, grown)

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry`: the ceiling, or a random part of it."""
        ceiling = self.ceiling(retry)
        return self.rng() * ceiling if self.config.random_jitter else ceiling

    def first_started(self, call: Call, failure: PluginError) -> tuple[float, bool]:
        """When the call's first attempt began, and whether that is exact, asked as it fails.

        Exact when the call has an overall deadline (stamped when it began) or the attempt
        timed out (it began its limit ago); else the attempt's own start is unknown (a call
        that succeeds at once reads no clock) and now is used.
        """
        now = self.clock.monotonic()
        total = call.context.total_timeout
        if call.deadline is not None and total is not None:
            return call.deadline - total, True
        limit = failure.details.get("timeout") if isinstance(failure, PluginTimeoutError) else None
        if isinstance(limit, int | float) and limit > 0:
            return now - limit, True
        return now, False

    def next_delay(
        self, failure: PluginError, call: Call, *, retries: int, max_retries: int, started: tuple[float, bool]
    ) -> float | None:
        """The wait before the next attempt of `call`, which just failed with `failure`; or
        None: the call stops, and `failure` (to be raised) now says why.

        Args:
            failure: The error of the attempt that just failed.
            call: That attempt.
            retries: Retries already made (0 after the first attempt).
            max_retries: Retries this call may make (`max_retries_for`, or 0 for a trial).
            started: `first_started` of the call.
        """
        if retries >= max_retries or not is_retryable(failure, call.context, idempotent=self.config.idempotent):
            if retries:
                self._name_attempts(failure, retries + 1, started)
            if retries < max_retries and failure.retryable:  # retryable, but it may have run
                _say_not_retried(failure, again=retries > 0)
            return None
        delay = self.backoff(retries + 1)
        if call.deadline is not None and self.clock.monotonic() + delay >= call.deadline:
            failure.details.setdefault("retry_stopped", "deadline")
            self._name_attempts(failure, retries + 1, started)
            return None
        return delay

    def _name_attempts(self, failure: PluginError, attempts: int, started: tuple[float, bool]) -> None:
        """Say in the last error how many attempts the call made and how long they took."""
        at, exact = started
        elapsed = self.clock.monotonic() - at
        failure.details["attempts"] = attempts
        failure.details["elapsed"] = round(elapsed, 3)
        took = f" in {elapsed:.3g}s" if exact else f", {elapsed:.3g}s from the first failure to the last"
        failure.message = f"{failure.message} ({attempts} attempt{'' if attempts == 1 else 's'}{took})"
        failure.args = (failure.message, *failure.args[1:])


def _say_not_retried(failure: PluginError, *, again: bool) -> None:
    """Say why a retryable failure was not retried: its request may have reached the plugin
    (`RequestSent.MAYBE`) and the call is not idempotent."""
    failure.details["retry_stopped"] = "not idempotent"
    failure.message = (
        f"{failure.message} (not retried{' again' if again else ''}: the request may have reached the plugin"
        " and the call is not idempotent)"
    )
    failure.args = (failure.message, *failure.args[1:])
