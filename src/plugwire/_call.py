"""`Call`: one call on its way to a plugin, as every policy and transport sees it.

Data, not behaviour: it sits beside `ExecutionContext` so that user policies, the built-in
pipeline and the transports all share it without importing one another.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._codec import CodecName
from ._errors import PluginTimeoutError, RequestSent
from ._models import ExecutionContext

__all__ = ["Call", "attempt_timed_out"]


class Call(msgspec.Struct, frozen=True):
    """One call on its way to a plugin (immutable: derive a changed copy with
    `msgspec.structs.replace(call, timeout=...)`).

    A frozen msgspec Struct: built and copied in C (about 80 ns; the frozen dataclass it once
    was cost ~650 ns to build, one `object.__setattr__` per field).

    Attributes:
        plugin: The registered plugin name.
        payload: The encoded request (`bytes`), or the request object itself for a
            transport whose `wants_bytes` is false (in-process with the codec off).
        context: The call's `ExecutionContext` (request id always set).
        codec: How `payload` is encoded.
        timeout: Seconds this attempt may take: the manager starts a call with its context's
            `timeout`, else the plugin's `connection.request_timeout`; the pipeline sets it on
            every attempt (cut to the call's overall deadline). Transports pass it on to the
            plugin as its deadline.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        deadline: When the whole call must be over, on the pipeline's clock (its
            `monotonic()`), from `ExecutionContext.total_timeout`; None means no overall limit.
    """

    plugin: str
    payload: Any
    context: ExecutionContext
    codec: CodecName = "msgpack"
    timeout: float | None = None
    attempt: int = 1
    deadline: float | None = None


def attempt_timed_out(call: Call, request_sent: RequestSent = RequestSent.MAYBE) -> PluginTimeoutError:
    """The error of an attempt that got no answer within `call.timeout` seconds (1204).

    Args:
        call: The attempt.
        request_sent: `MAYBE` once the request was handed to the connection (the plugin may
            be working on it); `NO` when time ran out before it was (waiting for a process
            or for the plugin to read earlier writes), which a retry may repeat safely.
    """
    return PluginTimeoutError(
        f"no answer within {call.timeout:g}s"
        if request_sent is RequestSent.MAYBE
        else f"the request could not be sent within {call.timeout:g}s",
        plugin=call.plugin,
        details={"timeout": call.timeout, "attempt": call.attempt},
        request_sent=request_sent,
    )
