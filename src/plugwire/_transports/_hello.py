"""The host's side of the handshake: check the plugin's answer to our `hello`.

`check_reply` decides; `HostConnection` breaks the connection with the error it returns or
switches to the codec the plugin chose. See docs/protocol.md ("Handshake").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from .._errors import ErrorCode, PluginError, ProtocolError, error_from_code
from .._protocol import SUPPORTED_VERSIONS, ErrorMsg, PluginHello, decode_handshake, too_deep

__all__ = ["check_reply"]


def check_reply(
    envelope: memoryview, offered_codecs: Sequence[str], plugin: str, junk: Callable[[], ProtocolError]
) -> PluginHello | PluginError:
    """The plugin's `hello` in `envelope` if it agrees to what the host offered, else the error
    that fails the start: `junk()` for bytes that are not JSON at all, the plugin's own coded
    refusal, or a protocol error (malformed reply, a version or codec the host did not offer)."""
    try:
        msgspec.json.decode(envelope)
    except msgspec.DecodeError:
        return junk()
    except RecursionError:
        error = too_deep("handshake message", envelope, ErrorCode.HANDSHAKE_FAILED)
        error.plugin = plugin
        return error
    try:
        reply: PluginHello | ErrorMsg = decode_handshake(envelope, "host")
    except ProtocolError as exc:
        return exc
    if isinstance(reply, ErrorMsg):
        return error_from_code(reply.code, reply.message, retryable=reply.retryable, plugin=plugin)
    if reply.version not in SUPPORTED_VERSIONS:
        return ProtocolError(
            f"the plugin chose protocol version {reply.version}; the host offered {list(SUPPORTED_VERSIONS)}",
            code=ErrorCode.NO_COMMON_VERSION,
            plugin=plugin,
        )
    if reply.codec not in offered_codecs:
        return ProtocolError(
            f"the plugin chose codec {reply.codec!r}; the host offered {list(offered_codecs)}",
            code=ErrorCode.HANDSHAKE_FAILED,
            plugin=plugin,
        )
    return reply
