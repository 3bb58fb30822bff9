"""The envelope messages of wire protocol v1 and their encoders, one pass per frame.

Every frame after the handshake holds one envelope: a map whose ``type`` field names the
message. A call's or result's ``payload`` is embedded as a value of the negotiated codec
(`msgspec.Raw`), so a typed payload encoded once by the host's codec is copied into the
envelope verbatim instead of being encoded twice.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final, Literal

import msgspec

from .._codec import CodecName
from .._errors import ErrorCode, ProtocolError
from .._models import PluginInfo

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "NESTING_GUARANTEED",
    "CallContext",
    "CallMsg",
    "CancelMsg",
    "EnvelopeCodec",
    "ErrorMsg",
    "HealthMsg",
    "HostHello",
    "HostMessage",
    "PluginHello",
    "PluginMessage",
    "ResultMsg",
    "ShutdownMsg",
    "decode_handshake",
    "handshake_frame",
    "pack_length",
    "too_deep",
]

HEADER_SIZE: Final = 4
pack_length: Final = struct.Struct(">I").pack_into
"""`pack_length(buf, offset, size)`: write a frame's length prefix into `buf` at `offset`."""
DEFAULT_MAX_FRAME: Final = 16 * 1024 * 1024
NESTING_GUARANTEED: Final = 256
"""Levels of nested arrays and maps every receiver decodes. Deeper frames may be refused
with 2003: the decoder stops at the interpreter's recursion limit, which a frame is
never allowed to reach (docs/protocol.md, "Limits")."""


class _Msg(msgspec.Struct, tag_field="type"):
    """Base of every envelope: tagged by its ``type`` field; every field is always written."""


class CallContext(msgspec.Struct, omit_defaults=True):
    """Per-call facts sent with a `call`.

    Attributes:
        request_id: The host's request id, for logs and traces.
        deadline: Absolute wall-clock time (seconds since the epoch) after which the host
            no longer waits; 0 means none.
        metadata: String pairs from the caller's `ExecutionContext.metadata`.
        headers: String pairs from the caller's `ExecutionContext.headers`.
        traceparent: A W3C trace-context header, when the call is traced.
    """

    request_id: str = ""
    deadline: float = 0.0
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    traceparent: str = ""


# ---------------------------------------------------------------- handshake (always JSON)
class HostHello(_Msg, tag="hello"):
    """The host's first frame: what it speaks, its frame limit and its credentials."""

    versions: list[int]
    codecs: list[str]
    max_frame: int = DEFAULT_MAX_FRAME
    auth: dict[str, str] = msgspec.field(default_factory=dict)


class PluginHello(_Msg, tag="hello"):
    """The plugin's answer: the chosen version and codec, and what it is."""

    version: int
    codec: str
    info: PluginInfo
    max_frame: int = DEFAULT_MAX_FRAME


# ---------------------------------------------------------------- host -> plugin
class CallMsg(_Msg, tag="call"):
    """Run one request. ``id`` is unique on the connection while the call is pending."""

    id: int
    payload: msgspec.Raw
    method: str = "execute"
    ctx: CallContext = msgspec.field(default_factory=CallContext)


class CancelMsg(_Msg, tag="cancel"):
    """Stop working on call ``id``; the host already gave up and ignores any answer."""

    id: int


class HealthMsg(_Msg, tag="health"):
    """Report health; answered by a `result` whose payload is a health status map."""

    id: int


class ShutdownMsg(_Msg, tag="shutdown"):
    """Stop taking calls, finish in-flight ones within ``grace`` seconds, close and exit 0."""

    grace: float = 10.0


# ---------------------------------------------------------------- plugin -> host
class ResultMsg(_Msg, tag="result"):
    """The answer to call or health ``id``."""

    id: int
    payload: msgspec.Raw


class InlineResultMsg(_Msg, tag="result"):
    """`ResultMsg` holding the answer itself (any value its codec encodes): the same bytes
    as `ResultMsg(payload=Raw(encode(answer)))`, encoded in one pass, not two (encode only)."""

    id: int
    payload: Any


class ErrorMsg(_Msg, tag="error"):
    """A failure: of call or health ``id``, or of the whole connection when ``id`` is 0."""

    code: int
    message: str
    id: int = 0
    retryable: bool = False


HostMessage = CallMsg | CancelMsg | HealthMsg | ShutdownMsg
"""What a plugin receives after the handshake."""
PluginMessage = ResultMsg | ErrorMsg
"""What a host receives after the handshake."""


class EnvelopeCodec:
    """Encodes envelopes straight into length-prefixed frames and decodes them back.

    Args:
        codec: The negotiated codec, "msgpack" or "json".
        inbound: The message union this side receives (`HostMessage` on the plugin side,
            `PluginMessage` on the host side).
    """

    __slots__ = ("_decode", "_encode_into", "codec", "raw_decoder")

    _decode: Callable[[bytes | memoryview], Any]

    def __init__(self, codec: CodecName, inbound: Any) -> None:
        self.codec: CodecName = codec
        if codec == "json":
            self._encode_into = msgspec.json.Encoder().encode_into
            self._decode = msgspec.json.Decoder(inbound).decode
        elif codec == "msgpack":
            self._encode_into = msgspec.msgpack.Encoder().encode_into
            self._decode = msgspec.msgpack.Decoder(inbound).decode
        else:
            raise ValueError(f"unknown codec {codec!r}")
        #: The bare msgspec decoder behind `decode`: raises `msgspec.DecodeError` or
        #: `msgspec.ValidationError` instead of the coded error (for hot paths that call
        #: `decode` again, to word the error, only when it refuses).
        self.raw_decoder: Callable[[bytes | memoryview], Any] = self._decode

    def frame(self, message: msgspec.Struct, max_frame: int = DEFAULT_MAX_FRAME) -> bytearray:
        """One frame holding `message`: a 4-byte big-endian length, then the envelope.

        Raises:
            ProtocolError: The envelope is larger than `max_frame` (2001).
        """
        buf = bytearray()
        self.append_frame(message, buf, max_frame)
        return buf

    def append_frame(self, message: msgspec.Struct, buf: bytearray, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        """Append the frame holding `message` to `buf` (frames gathered for one write are
        encoded in place, with no frame of their own to copy).

        Raises:
            ProtocolError: The envelope is larger than `max_frame` (2001); `buf` is left as it was.
        """
        start = len(buf)
        self._encode_into(message, buf, start + HEADER_SIZE)
        size = len(buf) - start - HEADER_SIZE
        if size > max_frame:
            del buf[start:]
            raise ProtocolError(
                f"a {type(message).__name__} frame of {size} bytes exceeds the peer's limit of {max_frame} bytes",
                code=ErrorCode.FRAME_TOO_LARGE,
                details={"size": size, "max_frame": max_frame},
            )
        pack_length(buf, start, size)

    def decode(self, envelope: bytes | memoryview) -> Any:
        """Decode one envelope (without its length prefix).

        Raises:
            ProtocolError: It is not a valid envelope of an accepted type (2003).
        """
        try:
            return self._decode(envelope)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProtocolError(
                # 16 bytes show what arrived (junk, another codec) without reaching into a payload.
                f"undecodable {self.codec} envelope: {exc}; first bytes {bytes(envelope[:16])!r}",
                code=ErrorCode.ENVELOPE_INVALID,
            ) from None
        except RecursionError:
            raise too_deep(f"{self.codec} envelope", envelope) from None


_JSON_HANDSHAKE_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {}
_json_encoder = msgspec.json.Encoder()


def handshake_frame(message: HostHello | PluginHello | ErrorMsg) -> bytes:
    """A handshake frame: handshake messages are always JSON, whatever codec follows."""
    body = _json_encoder.encode(message)
    return len(body).to_bytes(HEADER_SIZE, "big") + body


def decode_handshake(envelope: bytes | memoryview, side: Literal["host", "plugin"]) -> Any:
    """Decode a handshake envelope: a `HostHello` (side "plugin"), or a `PluginHello` or
    `ErrorMsg` (side "host").

    Raises:
        ProtocolError: Not a valid handshake message (2005).
    """
    decoder = _JSON_HANDSHAKE_DECODERS.get(side)
    if decoder is None:
        inbound: Any = HostHello if side == "plugin" else PluginHello | ErrorMsg
        decoder = _JSON_HANDSHAKE_DECODERS[side] = msgspec.json.Decoder(inbound)
    try:
        return decoder.decode(envelope)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(
            f"invalid handshake message: {exc}; bytes {bytes(envelope[:64])!r}", code=ErrorCode.HANDSHAKE_FAILED
        ) from None
    except RecursionError:
        raise too_deep("handshake message", envelope, ErrorCode.HANDSHAKE_FAILED) from None


def too_deep(what: str, envelope: bytes | memoryview, code: ErrorCode = ErrorCode.ENVELOPE_INVALID) -> ProtocolError:
    """The error for a frame nested deeper than the decoder goes (msgspec stops at the
    interpreter's recursion limit: a bound on the nesting, not a crash)."""
    return ProtocolError(
        f"a {what} of {len(envelope)} bytes is nested deeper than the receiver decodes "
        f"(more than {NESTING_GUARANTEED} levels of arrays and maps may be refused); "
        f"first bytes {bytes(envelope[:16])!r}",
        code=code,
        details={"size": len(envelope)},
    )
