"""Translate a failed gRPC call into the plugwire error a user sees.

A plugwire server names the exact error in trailing metadata (`plugwire-code`,
`plugwire-retryable`); that wins. Any other server (or grpc itself, for connection and TLS
failures) is mapped from its status code and, for connection failures, from grpc's
description of what went wrong, so that a wrong CA, an expired certificate or a plaintext
peer each get their own code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .._errors import (
    AuthenticationError,
    ErrorCode,
    ExecutionError,
    OutcomeUnknownError,
    PluginError,
    PluginTimeoutError,
    ProtocolError,
    RateLimitedError,
    RequestSent,
    RequestValidationError,
    TransportError,
    answered,
    error_from_code,
)
from .._proto import CODE_TRAILER, DETAILS_TRAILER, RETRYABLE_TRAILER

__all__ = ["error_from_rpc"]

# grpc's words for a call that failed because no connection could be made.
_CONNECTING = ("failed to connect", "connections to all backends failing", "connection refused")
# grpc's own words for a connection that broke while a call was in flight.
_BROKEN_MID_CALL = ("socket closed", "connection reset", "goaway", "broken pipe", "stream removed", "rst_stream")
# Statuses only a server that read the request answers with: it was sent, and refused or failed.
_ANSWERED = frozenset(
    {"INVALID_ARGUMENT", "UNAUTHENTICATED", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "UNIMPLEMENTED"}
)


def error_from_rpc(
    status: str, details: str, trailers: Iterable[tuple[str, Any]], *, plugin: str, tls: bool, mutual: bool
) -> PluginError:
    """The plugwire error for a gRPC failure, with whether the request may have reached the
    plugin (`request_sent`): grpc says little about that, so only a failure to connect is
    `NO`, a status only a server answers with (or a plugwire plugin's own error) is `YES`,
    and anything else (a deadline, a stream cut by a server going away) is `MAYBE`.

    Args:
        status: The gRPC status code's name (`"UNAVAILABLE"`).
        details: The status message.
        trailers: The call's trailing metadata.
        plugin: The plugin's name, for the error.
        tls: Whether the host used TLS (tells apart a peer that wants TLS from one that is down).
        mutual: Whether the host sent a client certificate.
    """
    peer_code, peer_retryable, peer_details = _peer_error(trailers)
    facts: dict[str, Any] = {"grpc_status": status}
    if peer_code is not None:
        facts = {**peer_details, **facts}
        return error_from_code(
            peer_code, details, retryable=peer_retryable, plugin=plugin, details=facts, request_sent=answered(peer_code)
        )
    text = details or status
    lowered = text.lower()
    if status == "UNAVAILABLE":
        return _unavailable(text, lowered, plugin=plugin, tls=tls, mutual=mutual)
    if status == "RESOURCE_EXHAUSTED" and "larger than max" in lowered:
        return TransportError(
            f"message too large: {text}",
            code=ErrorCode.MESSAGE_TOO_LARGE,
            retryable=False,
            plugin=plugin,
            details=facts,
            # grpc refuses to send a request above the limit; an answer above it means the work was done.
            request_sent=RequestSent.NO if "sent message larger" in lowered else RequestSent.MAYBE,
        )
    simple: dict[str, PluginError] = {
        "INVALID_ARGUMENT": RequestValidationError(f"the plugin refused the request: {text}", plugin=plugin),
        "DEADLINE_EXCEEDED": PluginTimeoutError(f"deadline exceeded: {text}", plugin=plugin),
        "UNAUTHENTICATED": AuthenticationError(f"the plugin refused the credentials: {text}", plugin=plugin),
        "PERMISSION_DENIED": AuthenticationError(
            f"the plugin denied permission: {text}", code=ErrorCode.AUTH_PERMISSION_DENIED, plugin=plugin
        ),
        "RESOURCE_EXHAUSTED": RateLimitedError(f"the plugin is overloaded: {text}", retryable=True, plugin=plugin),
        "CANCELLED": OutcomeUnknownError(f"the plugin cancelled the call: {text}", plugin=plugin),
        "ABORTED": ExecutionError(f"the plugin aborted the call: {text}", retryable=True, plugin=plugin),
        "UNIMPLEMENTED": ProtocolError(f"the server does not implement plugwire.v1.Plugin: {text}", plugin=plugin),
        "INTERNAL": ProtocolError(f"gRPC internal error: {text}", plugin=plugin),
        "DATA_LOSS": TransportError(f"data loss: {text}", retryable=False, plugin=plugin),
    }
    error = simple.get(status)
    if error is None:  # UNKNOWN, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE
        error = ExecutionError(f"the plugin failed ({status}): {text}", plugin=plugin)
    elif status in _ANSWERED:
        error.request_sent = RequestSent.YES
    elif status == "INTERNAL":  # grpc's own failure, possibly reading an answer to a call that ran
        error.request_sent = RequestSent.MAYBE
    error.details.update(facts)
    return error


def peer_reported(trailers: Iterable[tuple[str, Any]] | None) -> bool:
    """Whether a failed call's trailers carry a plugwire error code from the plugin itself."""
    return any(key == CODE_TRAILER for key, _ in trailers or ())


def _peer_error(trailers: Iterable[tuple[str, Any]]) -> tuple[int | None, bool | None, dict[str, Any]]:
    code: int | None = None
    retryable: bool | None = None
    details: dict[str, Any] = {}
    for key, value in trailers or ():
        if key == CODE_TRAILER:
            try:
                code = int(value)
            except (TypeError, ValueError):
                code = None
        elif key == RETRYABLE_TRAILER:
            retryable = value == "1"
        elif key == DETAILS_TRAILER:
            try:
                parsed = json.loads(value)
            except (TypeError, ValueError):
                continue  # details are a courtesy; a peer that garbles them still reported the error
            if isinstance(parsed, dict):
                details = parsed
    return code, retryable, details


def _unavailable(text: str, lowered: str, *, plugin: str, tls: bool, mutual: bool) -> PluginError:
    facts = {"grpc_status": "UNAVAILABLE"}
    connecting = any(phrase in lowered for phrase in _CONNECTING)
    if not connecting:
        if any(word in lowered for word in _BROKEN_MID_CALL):
            return OutcomeUnknownError(
                f"the connection to the plugin broke during the call: {text}", plugin=plugin, details=facts
            )
        # Not a failure to connect: the call may have started (a server stopping cancels its
        # calls with "Cancelling all calls"), so the outcome is unknown.
        return TransportError(
            f"the plugin is unavailable: {text}", plugin=plugin, details=facts, request_sent=RequestSent.MAYBE
        )
    tls_error = _tls_error(text, lowered, tls=tls, mutual=mutual)
    if tls_error is not None:
        code, message = tls_error
        family = AuthenticationError if 1100 <= code < 1200 else TransportError
        return family(message, code=code, retryable=False, plugin=plugin, details=facts, request_sent=RequestSent.NO)
    return TransportError(
        f"cannot connect to the plugin: {text}",
        code=ErrorCode.CONNECT_FAILED,
        plugin=plugin,
        details=facts,
        request_sent=RequestSent.NO,
    )


def _tls_error(text: str, lowered: str, *, tls: bool, mutual: bool) -> tuple[int, str] | None:
    if "certificate has expired" in lowered or "certificate is not yet valid" in lowered:
        return ErrorCode.TLS_CERT_EXPIRED, f"the plugin's TLS certificate has expired or is not valid yet: {text}"
    if "hostname verification" in lowered or "peer name" in lowered:
        return (
            ErrorCode.TLS_HOSTNAME_MISMATCH,
            f"the plugin's TLS certificate does not name the host it was reached at: {text}",
        )
    if "wrong_version_number" in lowered or "wrong version number" in lowered:
        return ErrorCode.TLS_MISMATCH, f"the host uses TLS but the plugin answered in plaintext: {text}"
    if "certificate_verify_failed" in lowered:
        return ErrorCode.TLS_CERT_UNTRUSTED, f"the plugin's TLS certificate is not signed by a trusted CA: {text}"
    if "handshake failed" in lowered:
        return ErrorCode.TLS_HANDSHAKE_FAILED, f"the TLS handshake with the plugin failed: {text}"
    if "socket closed" in lowered:
        # The peer hung up while the connection was being set up.
        if not tls:
            return ErrorCode.TLS_MISMATCH, f"the plugin closed a plaintext connection; it probably requires TLS: {text}"
        if not mutual:
            return (
                ErrorCode.AUTH_CLIENT_CERT_REQUIRED,
                f"the plugin closed the TLS handshake; it probably requires a client certificate (mtls): {text}",
            )
        return ErrorCode.AUTH_CLIENT_CERT_REJECTED, f"the plugin refused the host's client certificate: {text}"
    return None
