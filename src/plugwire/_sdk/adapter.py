"""The plugin side of every transport: decode a request, run the plugin, encode the answer.

The stdio and gRPC servers and the in-process transport all run plugins through
`PluginAdapter`, so a plugin behaves the same wherever it runs. Imports only layers 0-2:
a plugin process loads no host code.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from .._codec import CodecName, TypedCodec, encode, is_pydantic_model
from .._errors import ExecutionError, InvalidPluginError, PluginError
from .._models import ExecutionContext, HealthStatus, Plugin, PluginInfo, Status
from ._workers import WorkerThreads, default_max_threads

__all__ = ["PluginAdapter", "resolve_types"]

CLOSE_WAIT = 0.5
"""Seconds `close()` waits for the worker threads to exit; a thread still in a call is left."""


def resolve_types(plugin: object, request_type: Any = None, response_type: Any = None) -> tuple[Any, Any]:
    """Find a plugin's request and response types.

    Explicit arguments win; then `Plugin[Req, Resp]` in the class's bases; then the
    annotations of `execute(self, ctx, request) -> Resp`. A type that cannot be found is
    `typing.Any` (no validation).
    """
    found_req, found_resp = _from_bases(type(plugin))
    if found_req is None or found_resp is None:
        hint_req, hint_resp = _from_hints(plugin)
        found_req = found_req if found_req is not None else hint_req
        found_resp = found_resp if found_resp is not None else hint_resp
    req = request_type if request_type is not None else found_req
    resp = response_type if response_type is not None else found_resp
    return (Any if req is None else req), (Any if resp is None else resp)


def _from_bases(cls: type) -> tuple[Any, Any]:
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is Plugin:
                args = typing.get_args(base)
                if len(args) == 2 and not any(isinstance(arg, typing.TypeVar) for arg in args):
                    return args[0], args[1]
    return None, None


def _from_hints(plugin: object) -> tuple[Any, Any]:
    execute = getattr(plugin, "execute", None)
    if execute is None:
        return None, None
    try:
        hints = typing.get_type_hints(execute)
    except Exception:  # unresolvable forward references: fall back to no validation
        return None, None
    params = [name for name in inspect.signature(execute).parameters if name != "self"]
    req = hints.get(params[1]) if len(params) >= 2 else None
    return req, hints.get("return")


class PluginAdapter:
    """Runs one plugin object: typed decoding, sync-or-async dispatch, error mapping.

    Args:
        plugin: An object with `info()`, `execute(ctx, request)` and optionally `health()`
            and `close()`; each may be `async def` or plain `def`.
        request_type, response_type: Override the types found on the plugin.
        max_threads: The most worker threads for plain `def` methods (default
            `min(32, CPUs + 4)`, as `concurrent.futures.ThreadPoolExecutor`); each call runs
            in a copy of the caller's `contextvars` context (`_sdk/_workers.py`).

    Raises:
        ValueError: `max_threads` below 1.
    """

    def __init__(
        self,
        plugin: Any,
        *,
        request_type: Any = None,
        response_type: Any = None,
        max_threads: int | None = None,
    ) -> None:
        if not callable(getattr(plugin, "execute", None)) or not callable(getattr(plugin, "info", None)):
            raise InvalidPluginError(
                f"{type(plugin).__name__} is not a plugin: it needs info() and execute(ctx, request)"
            )
        self.plugin = plugin
        self.request_type, self.response_type = resolve_types(plugin, request_type, response_type)
        if max_threads is not None and max_threads < 1:
            raise ValueError("max_threads must be >= 1")
        self._max_threads = default_max_threads() if max_threads is None else max_threads
        self._threads: WorkerThreads | None = None  # created at the first plain `def` call
        self._control: WorkerThreads | None = None  # health() and close(), beside the calls
        self._codecs: dict[CodecName, TypedCodec[Any]] = {}
        self._closed = False
        # Decided once: `execute` runs on every call, and inspecting it each time is costly.
        self._execute_is_async = inspect.iscoroutinefunction(plugin.execute)

    def request_codec(self, codec: CodecName) -> TypedCodec[Any]:
        """The decoder for this plugin's request type in `codec` (built once)."""
        found = self._codecs.get(codec)
        if found is None:
            found = self._codecs[codec] = TypedCodec(self.request_type, codec, role="request")
        return found

    @property
    def execute_is_async(self) -> bool:
        """Whether the plugin's `execute` is `async def` (else it runs in the thread pool)."""
        return self._execute_is_async

    def request_decoder(self, codec: CodecName) -> Callable[[Any], Any]:
        """The fastest decoder of requests in `codec`, for a server's hot path.

        It raises `msgspec.ValidationError` or `msgspec.DecodeError` for a bad payload; the
        coded error `execute` raises comes from `request_codec(codec).decode` of the same bytes.
        """
        try:
            typed = self.request_codec(codec)
        except PluginError:  # a type the codec cannot handle: each call fails with it, as in `execute`
            return lambda payload: self.request_codec(codec).decode(payload)
        if is_pydantic_model(self.request_type):
            return typed.decode
        try:
            if codec == "json":
                return msgspec.json.Decoder(self.request_type).decode
            return msgspec.msgpack.Decoder(self.request_type).decode
        except TypeError:
            return typed.decode

    def encode_result(self, result: Any, codec: CodecName) -> bytes:
        """Encode the plugin's answer.

        Raises:
            ExecutionError: It cannot be encoded.
        """
        try:
            return encode(result, codec)
        except TypeError as exc:
            raise ExecutionError(f"the plugin returned a value that cannot be encoded: {exc}") from None

    def info(self) -> PluginInfo:
        """The plugin's `PluginInfo`; a plain mapping is accepted and converted."""
        owner = type(self.plugin).__name__
        try:
            info = self.plugin.info()
        except PluginError:
            raise
        except Exception as exc:
            raise ExecutionError(f"{owner}.info() raised {type(exc).__name__}: {exc}") from exc
        if isinstance(info, PluginInfo):
            return info
        if isinstance(info, dict):
            try:
                return PluginInfo(**info)
            except TypeError as exc:
                raise InvalidPluginError(f"{owner}.info() returned a mapping that is not a PluginInfo: {exc}") from None
        raise InvalidPluginError(f"{owner}.info() must return PluginInfo, got {type(info).__name__}")

    async def execute(self, ctx: ExecutionContext, payload: bytes, codec: CodecName = "msgpack") -> bytes:
        """Decode `payload`, run the plugin, and encode its answer in the same codec.

        Raises:
            RequestValidationError: The payload does not match the request type.
            PluginError: The plugin raised one (passed through as is).
            ExecutionError: The plugin raised anything else, or returned something unencodable.
        """
        request = self.request_codec(codec).decode(payload)
        if self._execute_is_async:
            # `execute_object` inlined for async plugins: one coroutine frame fewer per call.
            try:
                result = await self.plugin.execute(ctx, request)
            except (PluginError, asyncio.CancelledError):
                raise
            except Exception as exc:
                raise ExecutionError(f"{type(exc).__name__}: {exc}") from exc
        else:
            result = await self.execute_object(ctx, request)
        return self.encode_result(result, codec)

    async def execute_object(self, ctx: ExecutionContext, request: Any) -> Any:
        """Run the plugin on an already-decoded request (the in-process fast path)."""
        try:
            if self._execute_is_async:
                return await self.plugin.execute(ctx, request)
            return await self._invoke(self.plugin.execute, ctx, request)
        except (PluginError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise ExecutionError(f"{type(exc).__name__}: {exc}") from exc

    async def health(self) -> HealthStatus:
        """The plugin's health; a plugin without `health()` is healthy while it answers."""
        method = getattr(self.plugin, "health", None)
        if method is None:
            return HealthStatus(status=Status.HEALTHY, message="ok")
        status = await self._invoke(method, control=True)
        if not isinstance(status, HealthStatus):
            raise TypeError(f"health() must return HealthStatus, got {type(status).__name__}")
        return status

    async def close(self) -> None:
        """Call the plugin's `close()` once, then stop the worker threads and wait (at most
        `CLOSE_WAIT` seconds) for them to exit."""
        if self._closed:
            return
        self._closed = True
        try:
            method = getattr(self.plugin, "close", None)
            if method is not None:
                await self._invoke(method, control=True)
        finally:
            pools = [pool for pool in (self._threads, self._control) if pool is not None]
            for pool in pools:
                pool.shutdown()
            for pool in pools:
                await pool.wait_closed(CLOSE_WAIT)

    async def _invoke(self, method: Any, *args: Any, control: bool = False) -> Any:
        """Await `method(*args)`, or run a plain `def` in a worker thread: `execute` in the
        calls' pool, `health()` and `close()` (`control`) on a thread of their own, so that
        they never queue behind calls."""
        if inspect.iscoroutinefunction(method):
            return await method(*args)
        if control:
            if self._control is None:
                self._control = WorkerThreads(1, name="plugwire-plugin-control")
            threads = self._control
        else:
            if self._threads is None:
                self._threads = WorkerThreads(self._max_threads)
            threads = self._threads
        return await threads.run(lambda: method(*args))
