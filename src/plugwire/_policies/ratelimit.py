"""Rate limit: a token bucket per plugin (`requests_per_second`, `burst_size`) on a monotonic clock."""

from __future__ import annotations

import math
from typing import Any

from .._call import Call
from .._clock import Clock, system_clock
from .._config import RateLimitConfig
from .._errors import RateLimitedError

__all__ = ["RateLimiter", "TokenBucket"]

# Float rounding may put a wake-up a few ulps before the moment a token is due; within
# this slack the token counts as there, so a caller woken "on time" is never refused.
_SLACK = 1e-9


class TokenBucket:
    """A token bucket, kept as the time it will next be full (the GCRA form).

    The bucket holds at most `burst` tokens and gains `rate` tokens per second,
    continuously, or with `window > 0` in steps: `rate * window` tokens at the end of each
    window (the bucket then looks at the clock only at window boundaries). `acquire()`
    takes one token or says how long until one is free. It never
    awaits, so on one event loop concurrent callers are served exactly, first come first
    served. The "full at" time is an anchor plus a whole number of token intervals, so long
    runs do not accumulate rounding error.

    Args:
        rate: Tokens gained per second (> 0).
        burst: Capacity, and the number of calls allowed at once from full (>= 1).
        clock: Where time comes from.
        window: Refill period in seconds; 0 refills continuously.
    """

    __slots__ = ("_anchor", "_clock", "_count", "_interval", "_origin", "_tolerance", "burst", "rate", "window")

    def __init__(self, rate: float, burst: int, clock: Clock = system_clock, window: float = 0.0) -> None:
        if rate <= 0 or burst < 1 or window < 0:
            raise ValueError(
                f"a token bucket needs rate > 0, burst >= 1 and window >= 0, got {rate!r}, {burst!r}, {window!r}"
            )
        self.rate = float(rate)
        self.burst = int(burst)
        self.window = float(window)
        self._clock = clock
        self._origin = clock.monotonic()
        self._interval = 1.0 / self.rate
        # Admitting a call is allowed while the bucket is at most burst - 1 intervals behind.
        self._tolerance = (self.burst - 1) * self._interval
        self._anchor = clock.monotonic()
        self._count = 0

    def _now(self) -> float:
        """The clock as the bucket sees it: the start of the current window when stepped."""
        now = self._clock.monotonic()
        if self.window:
            now = self._origin + math.floor((now - self._origin) / self.window) * self.window
        return now

    def _wait_from(self, seen: float, wait: float) -> float:
        """Turn a wait measured from the bucket's view of now into real seconds from now."""
        if not self.window:
            return wait
        ready = self._origin + math.ceil((seen + wait - self._origin) / self.window - _SLACK) * self.window
        return max(ready - self._clock.monotonic(), _SLACK * 2)

    def _full_at(self) -> float:
        return self._anchor + self._count * self._interval

    def _advance(self, now: float) -> None:
        if self._full_at() <= now:  # full (or fuller than full): restart the count from now
            self._anchor = now
            self._count = 0

    def available_in(self) -> float:
        """Seconds until a token is there (0.0 if one is there now); takes nothing."""
        now = self._now()
        self._advance(now)
        wait = self._full_at() - now - self._tolerance
        return 0.0 if wait <= _SLACK else self._wait_from(now, wait)

    def acquire(self) -> float:
        """Take a token if one is there.

        Returns:
            0.0 if a token was taken, else the seconds until one will be there.
        """
        # `available_in` inlined: this runs on every call of a rate-limited plugin.
        now = self._clock.monotonic() if not self.window else self._now()
        full_at = self._anchor + self._count * self._interval
        if full_at <= now:
            self._anchor = full_at = now
            self._count = 0
        wait = full_at - now - self._tolerance
        if wait <= _SLACK:
            self._count += 1
            return 0.0
        return self._wait_from(now, wait)

    def reserve(self, limit: float | None) -> float | None:
        """Book the next token, to be used after waiting the returned number of seconds.

        Args:
            limit: The longest the caller may wait; None means any time.

        Returns:
            Seconds to wait (0.0 when a token is there now), or None if the wait would be
            longer than `limit` (nothing is booked then).
        """
        wait = self.available_in()
        if limit is not None and wait > limit:
            return None
        self._count += 1
        return wait

    def refund(self) -> None:
        """Give back the most recent booking (its caller gave up before using it)."""
        if self._count > 0:
            self._count -= 1

    @property
    def tokens(self) -> float:
        """Tokens available now (fractional)."""
        behind = max(0.0, self._full_at() - self._now())
        return max(0.0, self.burst - behind * self.rate)


class RateLimiter:
    """Admits one plugin's calls at its rate: `acquire` takes a token for a call or refuses it.

    Over the limit a call fails at once with `RateLimitedError` (1501) whose
    `details["retry_after"]` says when a token is free. With `wait=True` (config
    `rate_limit.wait`) a call over the limit books the next token instead, and its caller
    waits for it, as long as that ends within the call's overall deadline
    (`ExecutionContext.total_timeout`) or, without one, within its attempt timeout
    (`ExecutionContext.timeout`, else `max_wait`); a wait that cannot end in time fails at
    once, without sleeping.

    Args:
        config: The plugin's rate-limit settings.
        clock: Where time comes from.
        max_wait: The wait bound for calls without a deadline or timeout (None: unbounded).
    """

    __slots__ = ("bucket", "clock", "max_wait", "wait")

    def __init__(self, config: RateLimitConfig, clock: Clock = system_clock, *, max_wait: float | None = None) -> None:
        self.bucket = TokenBucket(config.requests_per_second, config.burst_size, clock, config.time_window)
        self.clock = clock
        self.wait = config.wait
        self.max_wait = max_wait

    def acquire(self, call: Call) -> float:
        """Take a token for `call`.

        Returns:
            0.0 when a token was there; with `wait`, else the seconds to wait for the token
            booked for the call (give it back with `refund` if the caller stops waiting).

        Raises:
            RateLimitedError: No token, and no waiting for one (1501).
        """
        if not self.wait:
            retry_after = self.bucket.acquire()
            if retry_after:
                raise self._refused(call, retry_after)
            return 0.0
        if call.deadline is not None:
            limit: float | None = call.deadline - self.clock.monotonic()
        else:
            limit = call.context.timeout if call.context.timeout is not None else self.max_wait
        delay = self.bucket.reserve(limit)
        if delay is None:
            raise self._refused(call, self.bucket.available_in(), waited=False)
        return delay

    def refund(self) -> None:
        """Give back the token `acquire` booked: its caller gave up waiting before using it."""
        self.bucket.refund()

    def _refused(self, call: Call, retry_after: float, *, waited: bool | None = None) -> RateLimitedError:
        details: dict[str, Any] = {
            "retry_after": retry_after,
            "requests_per_second": self.bucket.rate,
            "burst_size": self.bucket.burst,
        }
        message = f"rate limit of {self.bucket.rate:g}/s (burst {self.bucket.burst}) reached"
        if waited is False:
            message += "; the wait for a token would outlast the call's deadline"
        return RateLimitedError(f"{message}; retry after {retry_after:.3f}s", plugin=call.plugin, details=details)
