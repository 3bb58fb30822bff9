"""Retry: exponential backoff with full jitter, only for retryable errors, never past the deadline."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from msgspec.structs import replace

from .._clock import Clock, system_clock
from .._config import RetryConfig
from .._errors import ErrorCode, PluginError
from .._models import ExecutionContext
from .._transports.base import Call
from ._calls import stamp_deadline
from .chain import BindablePolicy, Handler

__all__ = ["RetryPolicy", "is_retryable"]


def is_retryable(error: BaseException, context: ExecutionContext) -> bool:
    """Whether a failed attempt may be repeated.

    Only `PluginError`s marked `.retryable` are; an outcome-unknown failure (1207: the plugin
    got the request and died before answering) only when the call is `idempotent`.
    """
    if not isinstance(error, PluginError) or not error.retryable:
        return False
    return error.code != ErrorCode.OUTCOME_UNKNOWN or context.idempotent


class RetryPolicy(BindablePolicy):
    """Repeats a failed attempt after a backoff, each attempt a fresh `Call` (`attempt` + 1).

    The n-th retry waits ``min(max_interval, initial_interval * multiplier ** (n - 1))``
    seconds, or with `random_jitter` a uniformly random part of that ("full jitter"). A
    retry whose wait would reach the call's deadline (`ExecutionContext.total_timeout`) is
    not made: the last error is raised at once, with ``details["retry_stopped"] ==
    "deadline"``. `ExecutionContext.max_retries` overrides the config's per call. The error
    that ends the retries carries ``details["attempts"]``.

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
        succeeds at once pays for no retry loop.
        """
        context = call.context
        first = call.attempt
        while True:
            retries = call.attempt - first
            if retries >= max_retries or not is_retryable(failure, context):
                if retries:
                    failure.details.setdefault("attempts", retries + 1)
                raise failure
            delay = self.backoff(retries + 1)
            if call.deadline is not None and self.clock.monotonic() + delay >= call.deadline:
                failure.details.setdefault("attempts", retries + 1)
                failure.details.setdefault("retry_stopped", "deadline")
                raise failure
            if delay > 0:
                await self.clock.sleep(delay)
            call = replace(call, attempt=call.attempt + 1)
            try:
                return await call_next(call)
            except PluginError as exc:
                failure = exc
