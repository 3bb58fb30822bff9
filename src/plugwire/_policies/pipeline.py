"""The call pipeline of one plugin: rate limit → breaker admission → attempts → breaker record.

`CallPipeline.run` is the whole algorithm, top to bottom, in one method; the rate limiter,
the breaker, the retry schedule and the attempt timeout are plain objects it asks
(`RateLimiter.acquire`, `CircuitBreaker.admit`/`record_*`, `RetrySchedule.next_delay`,
`AttemptTimeout`). User policies (`Policy`) wrap it from outside (`build_pipeline`).

Observability: the manager counts each call's outcome and duration around the pipeline
(`_observe.metrics.CallCounters`); the pipeline adds only what happens inside it, the retries,
on the retry path, when `counters` is set. Spans wrap the pipeline and its terminal from
outside. The lines marked ``# observe:`` name the other points of the algorithm.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from msgspec.structs import replace

from .._call import Call
from .._clock import Clock, SystemClock, system_clock
from .._config import PluginConfig, RetryConfig
from .._errors import PluginError
from .breaker import CircuitBreaker, Ticket
from .chain import Handler, Policy, compose
from .ratelimit import RateLimiter
from .retry import RetrySchedule
from .timeout import AttemptTimeout

__all__ = ["CallPipeline", "build_call_pipeline", "build_pipeline"]


class RetryCounter(Protocol):
    """Where the pipeline counts retries (`_observe.metrics.CallCounters`, a layer above)."""

    retries: int


_NO_RETRIES = RetryConfig(max_retries=0)
_NO_BREAKER: Ticket = (0, None)  # the ticket of a call no breaker admitted: never a trial


class CallPipeline:
    """The built-in policies of one plugin in front of its transport (`terminal`).

    The rate limiter and the breaker are None when the config turns them off (one test per
    call). The retry schedule and the attempt timeout always exist: a call's
    `ExecutionContext.max_retries` may ask for retries, and its `total_timeout` for a
    deadline, when the config has none.

    Args:
        terminal: Delivers one attempt to the transport.
        clock: Where the pipeline reads time and sleeps (retry and rate-limit waits).
        limiter: The rate limiter, or None.
        breaker: The circuit breaker, or None.
        retry: When to retry; default: never, unless a call's context asks.
        timeout: The attempt timeout; default: none per attempt (the deadline still holds).
        counters: Where retries are counted (metrics on), or None.
    """

    __slots__ = ("breaker", "clock", "counters", "limiter", "retry", "terminal", "timeout")

    def __init__(
        self,
        terminal: Handler,
        *,
        clock: Clock = system_clock,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        retry: RetrySchedule | None = None,
        timeout: AttemptTimeout | None = None,
        counters: RetryCounter | None = None,
    ) -> None:
        self.terminal = terminal
        self.counters = counters
        self.clock = clock
        self.limiter = limiter
        self.breaker = breaker
        self.retry = retry if retry is not None else RetrySchedule(_NO_RETRIES, clock)
        self.timeout = timeout if timeout is not None else AttemptTimeout(None, clock)

    async def run(self, call: Call) -> Any:  # noqa: PLR0915 (the whole algorithm in one method, on purpose)
        """Send `call` through the policies to the transport; return the encoded response.

        Raises:
            RateLimitedError: Over the rate limit (1501), before the breaker sees the call.
            CircuitOpenError: The breaker refused the call (1401).
            PluginTimeoutError: An attempt outlived its timeout (1204), or the overall
                deadline passed.
            PluginError: The last attempt's error, naming the attempts when retried.
        """
        context = call.context
        timeout = self.timeout
        # The overall deadline (`ExecutionContext.total_timeout`), fixed once for every step;
        # and the limit of each attempt (the manager has usually set it already).
        if context.total_timeout is not None and call.deadline is None:
            call = replace(call, deadline=self.clock.monotonic() + context.total_timeout)
        limit = timeout.default if context.timeout is None else context.timeout
        if call.timeout != limit:
            call = replace(call, timeout=limit)

        # 1. Rate limit: a token now, or one booked after a wait (`rate_limit.wait`), or
        #    RateLimitedError. A refused call never reaches the breaker.
        limiter = self.limiter
        if limiter is not None:
            wait = limiter.acquire(call)
            if wait:
                try:
                    await self.clock.sleep(wait)
                except BaseException:
                    limiter.refund()
                    raise

        # 2. Breaker admission: while closed, every call gets the closed period's ticket;
        #    else `admit` raises CircuitOpenError, or makes the call a trial (ticket[1] set):
        #    one verdict on the plugin, which makes a single attempt.
        breaker = self.breaker
        ticket = (breaker.closed_ticket or breaker.admit(limit)) if breaker is not None else _NO_BREAKER
        # observe: call admitted

        # 3. Attempts: each within its timeout (cut to the deadline); a failure is retried
        #    after the schedule's delay while it allows, else the last error is raised.
        terminal = self.terminal
        retries = 0
        try:
            while True:
                # observe: attempt started
                try:
                    attempt = call if call.deadline is None else timeout.within_deadline(call)
                    if timeout.delegated or attempt.timeout is None:
                        result = await terminal(attempt)  # timed by the transport, or no limit
                    else:
                        result = await timeout.run(terminal, attempt)
                    break
                except PluginError as exc:
                    failure = exc  # handled below, outside the `except`: retries do not chain to it
                # observe: attempt failed (failure.code)
                retry = self.retry
                if not retries:
                    started = retry.first_started(call, failure)
                trial = ticket[1] is not None
                delay = retry.next_delay(
                    failure,
                    call,
                    retries=retries,
                    max_retries=0 if trial else retry.max_retries_for(context),
                    started=started,
                )
                if delay is None:
                    raise failure
                if self.counters is not None:
                    self.counters.retries += 1
                if delay > 0:
                    await self.clock.sleep(delay)
                call = replace(call, attempt=call.attempt + 1)
                retries += 1
        # 4. Breaker record: one result per call, however many attempts it made.
        except BaseException as error:
            if breaker is not None:
                breaker.record_failure(ticket, error)
            # observe: call failed
            raise
        if breaker is not None:
            breaker.record_success(ticket)
        # observe: call succeeded
        return result


def build_pipeline(
    config: PluginConfig,
    terminal: Handler,
    *,
    extra: Sequence[Policy] = (),
    clock: Clock = system_clock,
    breaker: CircuitBreaker | None = None,
    rng: Callable[[], float] = random.random,
    transport_timeouts: bool = False,
) -> Handler:
    """`build_call_pipeline` with the user's policies (`extra`, outermost first) around it:
    the handler the manager calls."""
    pipeline = build_call_pipeline(
        config, terminal, clock=clock, breaker=breaker, rng=rng, transport_timeouts=transport_timeouts
    )
    # A bound method: what the manager (or the innermost user policy) calls on every call.
    return compose(extra, pipeline.run)


def build_call_pipeline(
    config: PluginConfig,
    terminal: Handler,
    *,
    clock: Clock = system_clock,
    breaker: CircuitBreaker | None = None,
    rng: Callable[[], float] = random.random,
    transport_timeouts: bool = False,
    counters: RetryCounter | None = None,
) -> CallPipeline:
    """The `CallPipeline` of one plugin (rate limit → breaker → attempts with retry and
    timeout) around `terminal` (the transport).

    The rate limiter is built only when `rate_limit.enabled`, the breaker only when
    `circuit_breaker.enabled`: a part the config turns off costs nothing.

    Args:
        config: The plugin's configuration.
        terminal: Delivers the call to the transport.
        clock: Where every part reads time and sleeps.
        breaker: The breaker to use (to observe it from outside); by default one is made
            from the config when enabled.
        rng: The jitter source of the retry schedule.
        transport_timeouts: `terminal` enforces `Call.timeout` itself
            (`BaseTransport.enforces_timeout`); on the system clock the pipeline then sets
            no timer. On any other clock (a `FakeClock`) it keeps its own, so tests that
            move time still see timeouts: the transport times calls on the event loop's clock.
        counters: Where retries are counted (metrics on), or None.
    """
    request_timeout = config.connection.request_timeout or None
    if breaker is None and config.circuit_breaker.enabled:
        breaker = CircuitBreaker(config.circuit_breaker, plugin=config.name, clock=clock)
    return CallPipeline(
        terminal,
        clock=clock,
        limiter=RateLimiter(config.rate_limit, clock, max_wait=request_timeout) if config.rate_limit.enabled else None,
        breaker=breaker,
        retry=RetrySchedule(config.retry, clock, rng=rng),
        timeout=AttemptTimeout(
            request_timeout, clock, transport_enforced=transport_timeouts and isinstance(clock, SystemClock)
        ),
        counters=counters,
    )
