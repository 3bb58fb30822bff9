"""What the calls of a connection fail with when it breaks, and why it broke at its end.

A call whose request reached the transport before the break may have run in the plugin: it
fails outcome-unknown (1207), which the retry policy retries only for idempotent calls. One
whose frame was still held back or buffered was never seen by the plugin: a transport error
saying so (`request_sent=NO`), safe to retry.
"""

from __future__ import annotations

from .._errors import ErrorCode, OutcomeUnknownError, PluginError, ProtocolError, RequestSent, TransportError

__all__ = ["closed_error", "junk_error", "lost_call_error", "not_sent"]


def not_sent(reason: PluginError, plugin: str) -> TransportError:
    """The error of a call whose request never reached the plugin."""
    code = reason.code if reason.code == ErrorCode.WRITE_TIMEOUT else ErrorCode.CONNECTION_LOST
    error = TransportError(
        f"the request was not sent: {reason.message}", code=code, plugin=plugin, request_sent=RequestSent.NO
    )
    error.__cause__ = reason
    return error


def lost_call_error(reason: PluginError, plugin: str, *, sent: bool) -> PluginError:
    """The error of a call pending when the connection broke with `reason`."""
    if not sent:
        return not_sent(reason, plugin)
    error = OutcomeUnknownError(
        f"the plugin failed after receiving the request: {reason.message}",
        plugin=plugin,
        details={"reason_code": reason.code},
    )
    error.__cause__ = reason
    return error


def junk_error(seen: bytes, plugin: str) -> ProtocolError:
    """Bytes before the handshake that are not a handshake frame."""
    return ProtocolError(
        f"the plugin wrote bytes that are not a handshake frame before the handshake: {seen!r}"
        " (a plugin must write nothing but frames on stdout)",
        code=ErrorCode.HANDSHAKE_JUNK,
        plugin=plugin,
        details={"bytes": seen.decode("latin-1")},
    )


def closed_error(exc: Exception | None, plugin: str) -> TransportError:
    """The plugin closed its end (between frames)."""
    reason = f": {exc}" if exc else ""
    return TransportError(
        f"the plugin closed its end of the connection{reason}", code=ErrorCode.CONNECTION_LOST, plugin=plugin
    )
