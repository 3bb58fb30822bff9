"""Retry: exponential backoff with full jitter, only for retryable errors, never past the deadline."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from .._clock import Clock, system_clock
from .._config import RetryConfig
from .._errors import ErrorCode, PluginError
from .._models import ExecutionContext
from .._transports.base import Call
from ._calls import stamp_deadline, with_attempt
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
        configured = self.config.max_retries
        retrying = self._retrying

        def retry(call: Call) -> Awaitable[Any]:
            wanted = call.context.max_retries
            max_retries = configured if wanted is None else wanted
            if max_retries <= 0:
                return call_next(call)  # no retries to make: no frame of our own
            return retrying(call, call_next, max_retries)

        return retry

    async def _retrying(self, call: Call, call_next: Handler, max_retries: int) -> Any:
        context = call.context
        if call.deadline is None and context.total_timeout is not None:
            call = stamp_deadline(call, self.clock)
        first = call.attempt
        while True:
            try:
                return await call_next(call)
            except PluginError as exc:
                retries = call.attempt - first
                if retries >= max_retries or not is_retryable(exc, context):
                    if retries:
                        exc.details.setdefault("attempts", retries + 1)
                    raise
                delay = self.backoff(retries + 1)
                if call.deadline is not None and self.clock.monotonic() + delay >= call.deadline:
                    exc.details.setdefault("attempts", retries + 1)
                    exc.details.setdefault("retry_stopped", "deadline")
                    raise
            # Sleep outside the `except` block so that attempts do not chain into each other.
            if delay > 0:
                await self.clock.sleep(delay)
            call = with_attempt(call, call.attempt + 1)
