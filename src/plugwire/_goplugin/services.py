"""go-plugin's own gRPC services, served by a Python plugin beside the application's:
`plugin.GRPCController` (the host asks the plugin to stop), `plugin.GRPCBroker` (the host
opens its stream right after connecting) and `plugin.GRPCStdio` (newer go-plugin hosts stream
the plugin's stdout). Their messages are built from a descriptor held in a private pool
(go-plugin's `internal/plugin/*.proto`, package `plugin`), so a plugin that also loads
go-plugin's generated Python modules sees no duplicate symbols. Imports grpc and protobuf:
loaded only by a plugin being served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from google.protobuf import (  # type: ignore[import-untyped]  # the grpc extra's protobuf: no stubs
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

from .._proto import load

grpc = load().grpc  # raises MissingDependencyError (naming the grpc extra) when grpcio is missing

__all__ = [
    "BROKER_SERVICE",
    "CONTROLLER_SERVICE",
    "STDIO_QUEUE_CHUNKS",
    "STDIO_SERVICE",
    "StdioService",
    "add_broker",
    "add_controller",
    "messages",
]

CONTROLLER_SERVICE: Final = "plugin.GRPCController"
BROKER_SERVICE: Final = "plugin.GRPCBroker"
STDIO_SERVICE: Final = "plugin.GRPCStdio"
STDIO_QUEUE_CHUNKS: Final = 256
"""Chunks of stdout held for one `StreamStdio` stream that is slow to send them; past that
the chunk goes to the log instead (the plugin never blocks on its stdout)."""
STDOUT: Final = 1  # StdioData.Channel.STDOUT

_log = logging.getLogger("plugwire.goplugin")


def _field(name: str, number: int, kind: int, **more: Any) -> descriptor_pb2.FieldDescriptorProto:
    return descriptor_pb2.FieldDescriptorProto(
        name=name, number=number, type=kind, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, **more
    )


def _descriptor() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="plugwire/goplugin/internal.proto", package="plugin", syntax="proto3"
    )
    file.message_type.add(name="Empty")
    knock = descriptor_pb2.DescriptorProto(
        name="Knock",
        field=[_field("knock", 1, f.TYPE_BOOL), _field("ack", 2, f.TYPE_BOOL), _field("error", 3, f.TYPE_STRING)],
    )
    file.message_type.add(
        name="ConnInfo",
        field=[
            _field("service_id", 1, f.TYPE_UINT32),
            _field("network", 2, f.TYPE_STRING),
            _field("address", 3, f.TYPE_STRING),
            _field("knock", 4, f.TYPE_MESSAGE, type_name=".plugin.ConnInfo.Knock"),
        ],
        nested_type=[knock],
    )
    channel = descriptor_pb2.EnumDescriptorProto(
        name="Channel",
        value=[
            descriptor_pb2.EnumValueDescriptorProto(name=name, number=number)
            for number, name in enumerate(("INVALID", "STDOUT", "STDERR"))
        ],
    )
    file.message_type.add(
        name="StdioData",
        field=[
            _field("channel", 1, f.TYPE_ENUM, type_name=".plugin.StdioData.Channel"),
            _field("data", 2, f.TYPE_BYTES),
        ],
        enum_type=[channel],
    )
    return file


class _Messages:
    """The message classes: `Empty`, `ConnInfo`, `StdioData` (google.protobuf.Empty has the
    same, empty, encoding as go-plugin's `plugin.Empty`)."""

    def __init__(self) -> None:
        pool = descriptor_pool.DescriptorPool()
        pool.Add(_descriptor())
        self.Empty: Any = message_factory.GetMessageClass(pool.FindMessageTypeByName("plugin.Empty"))
        self.ConnInfo: Any = message_factory.GetMessageClass(pool.FindMessageTypeByName("plugin.ConnInfo"))
        self.StdioData: Any = message_factory.GetMessageClass(pool.FindMessageTypeByName("plugin.StdioData"))


_messages: _Messages | None = None


def messages() -> _Messages:
    """The message classes (built on first use)."""
    global _messages  # noqa: PLW0603 - one pool per process, made when first needed
    if _messages is None:
        _messages = _Messages()
    return _messages


def _handler(kind: Callable[..., Any], method: Callable[..., Any], request: Any, response: Any) -> Any:
    return kind(method, request_deserializer=request.FromString, response_serializer=response.SerializeToString)


def add_controller(server: Any, on_shutdown: Callable[[], None]) -> None:
    """Serve `plugin.GRPCController/Shutdown`: it answers, then calls `on_shutdown()` (which
    must not block: the stop runs after the answer has gone)."""
    m = messages()

    async def shutdown(request: Any, context: Any) -> Any:
        _log.debug("the host asked the plugin to shut down (GRPCController.Shutdown)")
        asyncio.get_running_loop().call_soon(on_shutdown)
        return m.Empty()

    handlers = {"Shutdown": _handler(grpc.unary_unary_rpc_method_handler, shutdown, m.Empty, m.Empty)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(CONTROLLER_SERVICE, handlers),))


def add_broker(server: Any, stopping: asyncio.Event) -> None:
    """Serve `plugin.GRPCBroker/StartStream` so that the host's stream stays open and quiet:
    the plugin offers no brokered services, so it reads what the host sends (logged at
    debug) and answers nothing; the stream ends when the host ends it or the plugin stops."""
    m = messages()

    async def start_stream(requests: AsyncIterator[Any], context: Any) -> None:
        # A coroutine, not a generator: grpc.aio ends the response stream, empty, when it returns.
        async def read() -> None:
            async for info in requests:
                _log.debug(
                    "broker: the host offers service %d on %s %s (not used)",
                    info.service_id,
                    info.network,
                    info.address,
                )

        reader = asyncio.ensure_future(read())
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait((reader, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, stop):
                task.cancel()
            await asyncio.gather(reader, stop, return_exceptions=True)

    handlers = {"StartStream": _handler(grpc.stream_stream_rpc_method_handler, start_stream, m.ConnInfo, m.ConnInfo)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(BROKER_SERVICE, handlers),))


class StdioService:
    """`plugin.GRPCStdio/StreamStdio`: the plugin's stdout, in chunks, to each host that opened
    the stream. A chunk no stream can take (none is open, or an open one is `STDIO_QUEUE_CHUNKS`
    behind) goes to `fallback` instead, so no output is lost and the plugin never blocks.

    Args:
        stopping: Set when the plugin stops: every stream then sends what it holds and ends.
        fallback: Where a chunk goes when no stream takes it (the log on stderr).
    """

    def __init__(self, stopping: asyncio.Event, fallback: Callable[[bytes], None]) -> None:
        self._stopping = stopping
        self._fallback = fallback
        self._queues: list[asyncio.Queue[bytes]] = []

    def add_to(self, server: Any) -> None:
        """Register the service on `server`."""
        m = messages()
        handlers = {
            "StreamStdio": _handler(grpc.unary_stream_rpc_method_handler, self._stream, m.Empty, m.StdioData),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(STDIO_SERVICE, handlers),))

    def publish(self, chunk: bytes) -> None:
        """Send `chunk` (stdout bytes) to every open stream, or to the fallback."""
        taken = False
        for queue in self._queues:
            if queue.qsize() < STDIO_QUEUE_CHUNKS:
                queue.put_nowait(chunk)
                taken = True
        if not taken:
            self._fallback(chunk)

    async def _stream(self, request: Any, context: Any) -> AsyncIterator[Any]:
        data = messages().StdioData
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queues.append(queue)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                if queue.empty():
                    if self._stopping.is_set():
                        return
                    get = asyncio.ensure_future(queue.get())
                    await asyncio.wait((get, stop), return_when=asyncio.FIRST_COMPLETED)
                    if not get.done():
                        get.cancel()
                        continue
                    chunk = get.result()
                else:
                    chunk = queue.get_nowait()
                yield data(channel=STDOUT, data=chunk)
        finally:
            stop.cancel()
            self._queues.remove(queue)
            while not queue.empty():  # what a closed stream had not sent yet
                self._fallback(queue.get_nowait())
