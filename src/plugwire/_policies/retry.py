"""Retry: exponential backoff with full jitter, only for retryable errors, never past the deadline."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from msgspec.structs import replace

from .._clock import Clock, system_clock
from .._config import RetryConfig
from .._errors import PluginError, PluginTimeoutError, RequestSent
from .._models import ExecutionContext
from .._transports.base import Call
from ._calls import stamp_deadline
from .chain import BindablePolicy, Handler

__all__ = ["RetryPolicy", "is_retryable"]


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


class RetryPolicy(BindablePolicy):
    """Repeats a failed attempt after a backoff, each attempt a fresh `Call` (`attempt` + 1).

    The n-th retry waits ``min(max_interval, initial_interval * multiplier ** (n - 1))``
    seconds, or with `random_jitter` a uniformly random part of that ("full jitter"). A
    retry whose wait would reach the call's deadline (`ExecutionContext.total_timeout`) is
    not made: the last error is raised at once, with ``details["retry_stopped"] ==
    "deadline"``. `ExecutionContext.max_retries` overrides the config's per call. Which
    failures are retried: `is_retryable`. The error that ends a retried call names its
    attempts and their time in its message, and carries ``details["attempts"]`` and
    ``details["elapsed"]`` (seconds); a retryable one that may have run and so was not
    retried says so, with ``details["retry_stopped"] == "not idempotent"``.

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

    def bind(self, call_next: Handler) -> Handler:
        max_retries_for = self.max_retries_for
        retrying = self._retrying

        def retry(call: Call) -> Awaitable[Any]:
            max_retries = max_retries_for(call.context)
            if max_retries <= 0:
                return call_next(call)  # no retries to make: no frame of our own
            return retrying(call, call_next, max_retries)

        return retry

    def max_retries_for(self, context: ExecutionContext) -> int:
        """Retries this call may make: `ExecutionContext.max_retries`, else the config's."""
        return self.config.max_retries if context.max_retries is None else context.max_retries

    async def _retrying(self, call: Call, call_next: Handler, max_retries: int) -> Any:
        if call.deadline is None and call.context.total_timeout is not None:
            call = stamp_deadline(call, self.clock)
        try:
            return await call_next(call)
        except PluginError as exc:
            failure = exc
        return await self.after_failure(call, call_next, max_retries, failure)

    async def after_failure(self, call: Call, call_next: Handler, max_retries: int, failure: PluginError) -> Any:
        """Go on from a failed attempt `call`: retry while allowed, else raise the last error.

        The first attempt's frame calls this only when that attempt failed, so a call that
        succeeds at once pays for no retry loop (nor a clock reading: when the first attempt
        began is worked out here, see `_first_started`).
        """
        context = call.context
        idempotent = self.config.idempotent
        first = call.attempt
        started = _first_started(call, failure, self.clock.monotonic())
        while True:
            retries = call.attempt - first
            if retries >= max_retries or not is_retryable(failure, context, idempotent=idempotent):
                if retries:
                    self._name_attempts(failure, retries + 1, started)
                if retries < max_retries and failure.retryable:  # retryable, but it may have run
                    _say_not_retried(failure, again=retries > 0)
                raise failure
            delay = self.backoff(retries + 1)
            if call.deadline is not None and self.clock.monotonic() + delay >= call.deadline:
                failure.details.setdefault("retry_stopped", "deadline")
                self._name_attempts(failure, retries + 1, started)
                raise failure
            if delay > 0:
                await self.clock.sleep(delay)
            call = replace(call, attempt=call.attempt + 1)
            try:
                return await call_next(call)
            except PluginError as exc:
                failure = exc

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


def _first_started(call: Call, failure: PluginError, now: float) -> tuple[float, bool]:
    """When the call's first attempt began, and whether that is exact, from its failure at `now`.

    Exact when the call has an overall deadline (stamped when it began) or the attempt timed
    out (it began its limit ago); else the attempt's own time is unknown and `now` is used.
    """
    total = call.context.total_timeout
    if call.deadline is not None and total is not None:
        return call.deadline - total, True
    limit = failure.details.get("timeout") if isinstance(failure, PluginTimeoutError) else None
    if isinstance(limit, int | float) and limit > 0:
        return now - limit, True
    return now, False
