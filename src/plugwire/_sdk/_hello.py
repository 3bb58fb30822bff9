"""The plugin's side of the handshake: read the host's `hello`, agree, or refuse with a code.

`answer_hello` decides; `StdioServer` sends what it returns and, when agreed, switches to
the negotiated codec. See docs/protocol.md ("Handshake").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import msgspec

from .._codec import CodecName
from .._errors import AuthenticationError, ErrorCode, PluginError
from .._protocol import (
    SUPPORTED_VERSIONS,
    ErrorMsg,
    HostHello,
    PluginHello,
    choose_codec,
    choose_version,
    decode_handshake,
)
from .adapter import PluginAdapter

__all__ = ["Agreed", "AuthVerifier", "answer_hello"]

_log = logging.getLogger("plugwire.sdk")

AuthVerifier = Callable[[Mapping[str, str]], None]
"""Checks the credentials of the host's `hello`; raises `AuthenticationError` to refuse."""


class Agreed(msgspec.Struct, frozen=True):
    """What both sides agreed on: the plugin's `hello` answer, the codec, the host's frame limit."""

    reply: PluginHello
    codec: CodecName
    peer_max_frame: int


def answer_hello(
    envelope: memoryview,
    adapter: PluginAdapter,
    *,
    codecs: tuple[CodecName, ...],
    auth: AuthVerifier | None,
    max_frame: int,
) -> Agreed | ErrorMsg:
    """The host's `hello` in `envelope`, answered: `Agreed`, or the `error` that refuses it
    (a `PluginError` keeps its code; anything else raised, by the credential check or
    `info()`, is 1203)."""
    try:
        hello: HostHello = decode_handshake(envelope, "plugin")
        version = choose_version(hello.versions, SUPPORTED_VERSIONS)
        codec = choose_codec(hello.codecs, codecs)
        if auth is not None:
            _verify(auth, hello.auth)
        info = adapter.info()
    except Exception as exc:
        code = exc.code if isinstance(exc, PluginError) else ErrorCode.EXECUTION_FAILED
        message = exc.message if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
        _log.error("handshake refused: %s", message)
        return ErrorMsg(code=code, message=message)
    reply = PluginHello(version=version, codec=codec, info=info, max_frame=max_frame)
    return Agreed(reply, codec, hello.max_frame)


def _verify(auth: AuthVerifier, credentials: Mapping[str, str]) -> None:
    try:
        auth(credentials)
    except AuthenticationError:
        raise
    except Exception as exc:  # a broken verifier refuses rather than letting anyone in
        raise AuthenticationError(f"credential check failed: {type(exc).__name__}: {exc}") from exc
