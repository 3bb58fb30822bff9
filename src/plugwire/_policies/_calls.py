"""Deriving a new `Call` on the hot path: per-attempt copies and the call's overall deadline.

The deadline comes from `ExecutionContext.total_timeout`; the first policy that needs it
(rate-limit wait, retry, timeout) stores it on the `Call` as an absolute time on the
pipeline's clock, so every policy below measures the same budget from the same moment.
"""

from __future__ import annotations

import dataclasses
import operator

from .._clock import Clock
from .._codec import CodecName
from .._models import ExecutionContext
from .._transports.base import Call

__all__ = ["first_attempt", "stamp_deadline", "with_attempt", "with_timeout"]

# Read every field in one C call and rebuild positionally: about half the cost of
# `dataclasses.replace`, and still correct when `Call` gains fields.
_FIELDS = tuple(field.name for field in dataclasses.fields(Call))
_read_all = operator.attrgetter(*_FIELDS)
_ATTEMPT = _FIELDS.index("attempt")
_DEADLINE = _FIELDS.index("deadline")


def _with(call: Call, index: int, value: object) -> Call:
    values = list(_read_all(call))
    values[index] = value
    return Call(*values)


# A `Call` is built once or twice per call (the manager's, then the timeout policy's copy):
# filling its slots through their member descriptors, which a frozen dataclass's __init__
# cannot do, costs about half of `Call(...)` (one `object.__setattr__` per field).
_new = object.__new__
(_set_plugin, _set_payload, _set_context, _set_codec, _set_timeout, _set_attempt, _set_deadline) = (
    getattr(Call, name).__set__ for name in _FIELDS
)
if _FIELDS != ("plugin", "payload", "context", "codec", "timeout", "attempt", "deadline"):  # pragma: no cover
    raise ImportError(f"Call's fields changed to {_FIELDS}: update plugwire._policies._calls")


def _build(  # noqa: PLR0917 (positional: this runs on every call, keywords cost more)
    plugin: str,
    payload: object,
    context: ExecutionContext,
    codec: CodecName,
    timeout: float | None,
    attempt: int,
    deadline: float | None,
) -> Call:
    new: Call = _new(Call)
    _set_plugin(new, plugin)
    _set_payload(new, payload)
    _set_context(new, context)
    _set_codec(new, codec)
    _set_timeout(new, timeout)
    _set_attempt(new, attempt)
    _set_deadline(new, deadline)
    return new


def first_attempt(
    plugin: str, payload: object, context: ExecutionContext, codec: CodecName, timeout: float | None = None
) -> Call:
    """`Call(plugin=plugin, payload=payload, context=context, codec=codec, timeout=timeout)`, built faster."""
    return _build(plugin, payload, context, codec, timeout, 1, None)


def with_timeout(call: Call, timeout: float | None) -> Call:
    """`call` with `timeout` set."""
    return _build(
        call.plugin,
        call.payload,
        call.context,
        call.codec,
        timeout=timeout,
        attempt=call.attempt,
        deadline=call.deadline,
    )


def with_attempt(call: Call, attempt: int) -> Call:
    """`call` as attempt number `attempt`."""
    return _with(call, _ATTEMPT, attempt)


def stamp_deadline(call: Call, clock: Clock) -> Call:
    """`call` with its absolute deadline set, if its context has a total timeout and the
    call has no deadline yet; else `call` itself."""
    total = call.context.total_timeout
    if call.deadline is not None or total is None:
        return call
    return _with(call, _DEADLINE, clock.monotonic() + total)
