"""The plugin's end of a socket driven by the event loop's reader callback, without a transport.

On asyncio's selector loop a socket transport runs two extra Python frames for each read
and a few checks for each write; a plugin answering one small call at a time pays them on
every call. `SocketLink` reads straight into the server's buffer from the loop's reader
callback and sends with `socket.send`, keeping what the transport does for the server:
writes that do not go out at once are buffered and sent when the socket is writable, with
`pause_writing()` / `resume_writing()` at the same water marks; end of input and errors end
the connection the same way (`eof_received()`, then `connection_lost()`).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Final

from .._protocol import FrameReader

__all__ = ["HIGH_WATER", "LOW_WATER", "SocketLink"]

# asyncio's defaults for a socket transport.
HIGH_WATER: Final = 64 * 1024
LOW_WATER: Final = HIGH_WATER // 4


class SocketLink:
    """Connects `protocol` to a connected socket on a selector event loop.

    Offers the part of the transport interface the stdio server uses: `write`,
    `is_closing`, `pause_reading`, `resume_reading`, `get_write_buffer_size`, `close`.

    Args:
        loop: A running selector event loop (`loop.add_reader` on a file descriptor).
        sock: The connected socket; it is made non-blocking and closed by `close()`.
        protocol: Gets `connection_made(self)` now, then the buffered-protocol events.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: FrameReader) -> None:
        sock.setblocking(False)
        if sock.family in {socket.AF_INET, socket.AF_INET6}:  # a TCP peer: no Nagle delay, as asyncio does
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._out = bytearray()  # what the socket did not take yet
        self._closing = False
        self._broken = False  # a send or receive failed: writes are dropped from now on
        self._lost = False
        self._reading = False
        self._paused_protocol = False
        protocol.connection_made(self)  # type: ignore[arg-type]  # duck-typed like uvloop's transports
        self.resume_reading()

    # ------------------------------------------------------------------ reading
    def _read_ready(self) -> None:
        protocol = self._protocol
        try:
            count = self._sock.recv_into(protocol.get_buffer(-1))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        except Exception as exc:  # a bug in the protocol: end the connection, as a transport does
            self._crash(exc, "protocol.get_buffer() failed")
            return
        if count:
            try:
                protocol.buffer_updated(count)
            except Exception as exc:
                self._crash(exc, "protocol.buffer_updated() failed")
            return
        # End of input: the server winds down; as asyncio's transport does, the connection
        # then closes (unsent answers still leave first).
        self.pause_reading()
        if not protocol.eof_received():
            self.close()

    def pause_reading(self) -> None:
        """Stop reading until `resume_reading()`."""
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        """Read again (a no-op once closing)."""
        if not self._reading and not self._closing:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def is_reading(self) -> bool:
        """Whether the loop is reading the socket."""
        return self._reading

    # ------------------------------------------------------------------ writing
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send `data` now, or as soon as the socket takes it (in order)."""
        if self._broken or self._lost or not data:
            return
        out = self._out
        if out:
            out += data
        else:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._fail(exc)
                return
            if sent == len(data):
                return
            out += memoryview(data)[sent:]
            self._loop.add_writer(self._fd, self._write_ready)
        if len(out) > HIGH_WATER and not self._paused_protocol:
            self._paused_protocol = True
            self._protocol.pause_writing()

    def _write_ready(self) -> None:
        out = self._out
        try:
            sent = self._sock.send(out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        del out[:sent]
        if self._paused_protocol and len(out) <= LOW_WATER:
            self._paused_protocol = False
            self._protocol.resume_writing()  # may write more
        if not out:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._lose(None)

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the socket."""
        return len(self._out)

    # ------------------------------------------------------------------ closing
    def is_closing(self) -> bool:
        """Whether `close()` was called or the connection broke."""
        return self._closing

    def close(self) -> None:
        """Stop reading; the connection ends once buffered data has gone out."""
        if self._closing:
            return
        self._closing = True
        self.pause_reading()
        if not self._out:
            self._loop.call_soon(self._lose, None)

    def _fail(self, exc: Exception) -> None:
        self._closing = True
        self._broken = True
        self.pause_reading()
        if self._out:
            self._out.clear()
            self._loop.remove_writer(self._fd)
        self._loop.call_soon(self._lose, exc)

    def _crash(self, exc: Exception, message: str) -> None:
        self._loop.call_exception_handler({"message": message, "exception": exc, "transport": self})
        self._fail(exc)

    def _lose(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """`"socket"` is the socket; anything else is `default`."""
        return self._sock if name == "socket" else default
