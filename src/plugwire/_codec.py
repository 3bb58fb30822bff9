"""Typed encoding of requests and responses, to msgpack (the default) or JSON.

Supports dataclasses, msgspec Structs, TypedDicts, attrs-free plain built-in types, and
pydantic v2 models when pydantic is installed. Decoding validates: a payload of the wrong
shape raises a coded error that names the field; a half-built object is never returned.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar, cast

import msgspec

from ._errors import ConfigError, ErrorCode, PluginError, RequestValidationError, ResponseValidationError

__all__ = ["CODECS", "CodecName", "Encoded", "TypedCodec", "encode", "field_path", "is_pydantic_model"]

T = TypeVar("T")
CodecName = Literal["msgpack", "json"]
CODECS: tuple[CodecName, ...] = ("msgpack", "json")


def is_pydantic_model(tp: object) -> bool:
    """Whether `tp` is a pydantic v2 model class (without importing pydantic)."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(tp, type):
        return False
    return issubclass(tp, pydantic.BaseModel)


def _enc_hook(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if dump is not None and is_pydantic_model(type(obj)):
        return dump(mode="json")
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "msgpack": msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode,
    "json": msgspec.json.Encoder(enc_hook=_enc_hook).encode,
}


# What msgspec raises for a value it cannot encode (RecursionError: a cycle).
_ENCODE_ERRORS = (TypeError, NotImplementedError, OverflowError, RecursionError)


def encode(value: Any, codec: CodecName = "msgpack") -> bytes:
    """Encode any supported value; raises `TypeError` for one that cannot be encoded."""
    try:
        return _ENCODERS[codec](value)
    except _ENCODE_ERRORS as exc:
        raise _encode_error(value, exc) from exc


def _encode_error(value: Any, exc: BaseException) -> TypeError:
    return TypeError(f"cannot encode {type(value).__name__}: {exc}")


def field_path(message: str) -> str:
    """Pull `field.sub[0]` out of a msgspec message ending in "- at `$.field.sub[0]`"."""
    marker = " - at `$"
    start = message.rfind(marker)
    if start < 0:
        return ""
    return message[start + len(marker) :].rstrip("`").removeprefix(".")


class Encoded:
    """Bytes in another codec than the reader's: what a transport hands back when it cannot
    convert an answer between codecs without knowing its type (JSON has no bytes and only
    string keys, so only a typed decoder reads it back right). `TypedCodec.decode` decodes
    it in its own codec.

    Args:
        data: The encoded value.
        codec: Its codec.
    """

    __slots__ = ("codec", "data")

    def __init__(self, data: bytes, codec: CodecName) -> None:
        self.data = data
        self.codec: CodecName = codec


class TypedCodec(Generic[T]):
    """Encode values of one type and decode bytes back into that type, validating.

    Args:
        tp: The Python type (a class, `TypedDict`, `list[int]`, ...).
        codec: "msgpack" (default) or "json".
        role: "request" or "response": picks the error raised on a bad payload
            (`RequestValidationError` 1205 or `ResponseValidationError` 1206).
    """

    __slots__ = ("_decode", "_encode", "_error", "_others", "_pydantic", "codec", "role", "type")

    def __init__(
        self,
        tp: type[T] | Any,
        codec: CodecName = "msgpack",
        role: Literal["request", "response"] = "request",
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
        self.type = tp
        self.codec: CodecName = codec
        self.role = role
        self._error: type[PluginError] = RequestValidationError if role == "request" else ResponseValidationError
        self._pydantic = is_pydantic_model(tp)
        self._decode = _decoder(tp, codec, self._pydantic)
        self._encode = _ENCODERS[codec]
        self._others: dict[CodecName, TypedCodec[T]] = {}  # the same type in the other codecs

    def encode(self, value: T) -> bytes:
        """Encode `value`.

        Raises:
            RequestValidationError / ResponseValidationError: The value cannot be encoded.
        """
        try:
            return self._encode(value)  # `encode()` inlined: this runs on every call
        except _ENCODE_ERRORS as exc:
            raise self._error(
                f"{self.role} of type {type(value).__name__} cannot be encoded: {_encode_error(value, exc)}",
                details={"type": _type_name(self.type)},
            ) from None

    def decode(self, data: bytes | bytearray | memoryview | Encoded) -> T:
        """Decode and validate `data` as this codec's type.

        Args:
            data: The encoded value; an `Encoded` is decoded in its own codec.

        Raises:
            RequestValidationError / ResponseValidationError: naming the offending field.
        """
        try:
            value = self._decode(data)
        except TypeError:  # not bytes: in another codec (rare: the exception costs nothing until then)
            if isinstance(data, Encoded):
                return self.in_codec(data.codec).decode(data.data)
            raise
        except msgspec.ValidationError as exc:
            path = field_path(str(exc))
            reason = str(exc).split(" - at `", 1)[0].replace("`", "")
            raise self._error(
                f"{self.role} does not match {_type_name(self.type)}"
                + (f" at field {path!r}" if path else "")
                + f": {reason}",
                details={"field": path, "type": _type_name(self.type)},
            ) from None
        except msgspec.DecodeError as exc:
            raise self._error(
                f"{self.role} is not valid {self.codec}: {exc}", details={"type": _type_name(self.type)}
            ) from None
        except RecursionError:  # msgspec stops at the interpreter's recursion limit
            raise self._error(
                f"{self.role} is nested deeper than the {self.codec} decoder goes (its recursion limit)",
                details={"type": _type_name(self.type)},
            ) from None
        if self._pydantic:
            return cast(T, self._validate_pydantic(value))
        return value  # type: ignore[no-any-return]  # (not `cast`: a call on every answer)

    def in_codec(self, codec: CodecName) -> TypedCodec[T]:
        """This codec's type and role in `codec` (itself when `codec` is its own)."""
        if codec == self.codec:
            return self
        other = self._others.get(codec)
        if other is None:
            other = self._others[codec] = TypedCodec(self.type, codec, self.role)
        return other

    def _validate_pydantic(self, value: Any) -> Any:
        pydantic = sys.modules["pydantic"]
        try:
            return self.type.model_validate(value)  # type: ignore[union-attr]
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(part) for part in first.get("loc", ()))
            raise self._error(
                f"{self.role} does not match {_type_name(self.type)} at field {path!r}: {first.get('msg')}",
                details={"field": path, "type": _type_name(self.type)},
            ) from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


@functools.lru_cache(maxsize=256)
def _cached_decoder(tp: Any, codec: CodecName) -> Callable[[Any], Any]:
    if codec == "json":
        return msgspec.json.Decoder(tp).decode
    return msgspec.msgpack.Decoder(tp).decode


def _decoder(tp: Any, codec: CodecName, pydantic: bool) -> Callable[[Any], Any]:
    target = Any if pydantic else tp
    try:
        hash(target)
    except TypeError:
        build: Callable[[Any, CodecName], Callable[[Any], Any]] = _cached_decoder.__wrapped__
    else:
        build = _cached_decoder
    try:
        return build(target, codec)
    except TypeError as exc:
        raise ConfigError(
            f"type {_type_name(tp)} is not supported by the codec", code=ErrorCode.CONFIG_WRONG_TYPE
        ) from exc
