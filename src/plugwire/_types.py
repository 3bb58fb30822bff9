"""Type aliases and small Protocols shared by every layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["JSONValue", "LoggerLike", "Metadata", "ReqT", "RespT"]

ReqT = TypeVar("ReqT")
RespT = TypeVar("RespT")

Metadata = Mapping[str, str]
JSONValue = Any


@runtime_checkable
class LoggerLike(Protocol):
    """Any logger with the usual level methods: stdlib `logging`, structlog, loguru."""

    def debug(self, msg: str, /, *args: Any, **kwargs: Any) -> Any: ...

    def info(self, msg: str, /, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any, **kwargs: Any) -> Any: ...

    def error(self, msg: str, /, *args: Any, **kwargs: Any) -> Any: ...
