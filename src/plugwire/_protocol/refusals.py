"""What a plugin answers to frames from the host that it will not run.

A call it refuses (the plugin is stopping, the method is unknown, the id is in use) gets an
`error` for its id at once; an envelope it cannot decode is answered for its id when that
much of it can be read (so a call with a bad field fails at once instead of waiting for its
timeout), else for id 0.
"""

from __future__ import annotations

import msgspec

from .._codec import CodecName
from .._errors import ErrorCode
from .messages import CallMsg, ErrorMsg

__all__ = ["call_refusal", "readable_id"]


class _AnyId(msgspec.Struct):
    """Just the `id` of an envelope that is otherwise wrong (every other field ignored)."""

    id: int = 0


def call_refusal(message: CallMsg, *, stopping: bool) -> ErrorMsg:
    """The `error` that refuses `message`: stopping (retryable), unknown method, or id in use."""
    if stopping:
        return ErrorMsg(
            id=message.id,
            code=ErrorCode.PLUGIN_STOPPING,
            message="the plugin is stopping and takes no new calls",
            retryable=True,
        )
    if message.method != "execute":
        return ErrorMsg(id=message.id, code=ErrorCode.UNKNOWN_METHOD, message=f"unknown method {message.method!r}")
    return ErrorMsg(id=message.id, code=ErrorCode.ENVELOPE_INVALID, message=f"id {message.id} is already in use")


def readable_id(envelope: memoryview, codec: CodecName) -> int:
    """The `id` of an envelope that failed to decode, when it has a readable one; else 0."""
    decoder = msgspec.json.Decoder(_AnyId) if codec == "json" else msgspec.msgpack.Decoder(_AnyId)
    try:
        call_id = decoder.decode(envelope).id
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return 0
    return max(call_id, 0)
