"""Length-prefixed framing: split a byte stream into frames in one reused buffer.

A frame is a 4-byte big-endian length followed by that many bytes of envelope. The reader
checks every length against the maximum frame size *before* it makes room for the frame,
so a hostile or broken peer cannot make the receiver allocate.

No I/O here and no asyncio: the protocol sessions (`session.py`) are frame readers, and the
asyncio adapters hand them the reads (`get_buffer`/`buffer_updated`, the names of asyncio's
`BufferedProtocol`, so an adapter can expose a session's methods as its own).
"""

from __future__ import annotations

import struct
from typing import Final

from .._errors import ErrorCode, ProtocolError
from .messages import DEFAULT_MAX_FRAME, HEADER_SIZE

__all__ = ["FrameReader"]

_LENGTH = struct.Struct(">I")
_INITIAL_BUFFER: Final = 256 * 1024
# Compact (move a partial frame to the front) once less than this much room is left.
_MIN_ROOM: Final = 64 * 1024


class FrameReader:
    """Reads frames into one reused buffer and hands each to `frame_received`.

    A read fills the buffer directly (`get_buffer`, then `buffer_updated` with the count);
    bytes read elsewhere (a pipe transport's `data_received`) are copied into it. The memoryview given to
    `frame_received` is only valid during that call: keep a copy (`bytes(view)`) of
    anything needed later, because the buffer is reused for the next frames.

    Args:
        max_frame: The largest envelope accepted; a larger length is a protocol error.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray(_INITIAL_BUFFER)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        #: Set by a framing error (or `stop_reading_frames`): nothing more is delivered.
        self.broken = False
        self._held = False
        self._parsing = False

    # ------------------------------------------------------------ for subclasses
    def frame_received(self, envelope: memoryview) -> None:
        """Handle one complete envelope (without its length prefix)."""
        raise NotImplementedError

    def frame_error(self, error: ProtocolError) -> None:
        """The stream broke the framing rules; no more frames will be delivered."""
        raise NotImplementedError

    # -------------------------------------------------------------- inspection
    @property
    def buffered(self) -> int:
        """Bytes received but not yet delivered as a frame (a partial frame)."""
        return self._end - self._start

    def peek(self, limit: int = 64) -> bytes:
        """The first `limit` undelivered bytes, for error messages."""
        return bytes(self._buf[self._start : min(self._end, self._start + limit)])

    @property
    def capacity(self) -> int:
        """The current size of the receive buffer (bounded by max_frame + header)."""
        return len(self._buf)

    def hold_frames(self) -> None:
        """Stop delivering frames (they stay buffered) until `release_frames()`; used with
        the transport's `pause_reading()` to bound the work in progress."""
        self._held = True

    def release_frames(self) -> None:
        """Deliver buffered frames again."""
        if not self._held:
            return
        self._held = False
        if not self._parsing and not self.broken:
            self._parse()

    def stop_reading_frames(self) -> None:
        """Ignore everything received from now on."""
        self.broken = True

    def truncation_error(self) -> ProtocolError | None:
        """The error to report if the stream ends now: set when a frame is half received."""
        if self.broken or self._end == self._start:
            return None
        pending = self._end - self._start
        expected = ""
        if pending >= HEADER_SIZE:
            expected = f" of {_LENGTH.unpack_from(self._buf, self._start)[0] + HEADER_SIZE}"
        return ProtocolError(
            f"the stream ended in the middle of a frame ({pending}{expected} bytes received): {self.peek(32)!r}",
            code=ErrorCode.FRAME_TRUNCATED,
            details={"received": pending},
        )

    # ------------------------------------------------------------------ reading
    def get_buffer(self, sizehint: int) -> memoryview:
        if self._end == 0 and not self.broken:  # the usual read: nothing pending, the whole buffer
            return self._view
        if self.broken:  # discard: nothing after a framing error can be trusted
            self._start = self._end = 0
            return self._view
        if len(self._buf) - self._end < _MIN_ROOM:
            self._make_room()
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> bytearray | None:
        """`nbytes` more bytes were read into `get_buffer()`'s buffer. Returns what to write
        now in answer, if anything (a protocol session may; a bare reader never does)."""
        self._end += nbytes
        if not self.broken:
            self._parse()
        return None

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def feed(self, data: bytes) -> bytearray:
        """Take `data` (read elsewhere: a pipe's `data_received`, tests) as if it had been read
        into `get_buffer()`; returns what `buffer_updated` answered along the way, joined."""
        out = bytearray()
        incoming = memoryview(data)
        while incoming and not self.broken:
            room = self.get_buffer(len(incoming))
            count = min(len(room), len(incoming))
            room[:count] = incoming[:count]
            incoming = incoming[count:]
            now = self.buffer_updated(count)
            if now:
                out += now
        return out

    # ------------------------------------------------------------------- parsing
    def _parse(self) -> None:
        # One frame for the whole read: this loop runs for every frame on both sides.
        self._parsing = True
        try:
            buf = self._buf
            view = self._view
            start = self._start
            end = self._end
            unpack = _LENGTH.unpack_from
            header = HEADER_SIZE
            max_frame = self.max_frame
            received = self.frame_received
            while end - start >= header and not self._held:
                (size,) = unpack(buf, start)
                if size > max_frame or not size:
                    self._start = start
                    self.broken = True
                    self.frame_error(self._length_error(size))
                    return
                body = start + header
                stop = body + size
                if stop > end:
                    break
                self._start = stop
                received(view[body:stop])
                if self.broken or buf is not self._buf:
                    return
                start = stop
                end = self._end
            if start == end:
                start = end = 0
                if len(self._buf) > _INITIAL_BUFFER:  # a large frame is done: give its memory back
                    self._replace(bytearray(_INITIAL_BUFFER), 0, 0)
                    return
            self._start = start
            self._end = end
        finally:
            self._parsing = False

    def _length_error(self, size: int) -> ProtocolError:
        if size == 0:
            return ProtocolError("a frame of length 0 (frames hold one envelope)", code=ErrorCode.ENVELOPE_INVALID)
        return ProtocolError(
            f"a frame of {size} bytes exceeds the limit of {self.max_frame} bytes; refused before reading it "
            f"(first bytes {self.peek(32)!r})",
            code=ErrorCode.FRAME_TOO_LARGE,
            details={"size": size, "max_frame": self.max_frame},
        )

    def _make_room(self) -> None:
        pending = self._end - self._start
        needed = _MIN_ROOM
        if pending >= HEADER_SIZE:
            # The length was already checked against max_frame in _parse, so this is bounded.
            needed = max(needed, _LENGTH.unpack_from(self._buf, self._start)[0] + HEADER_SIZE)
        if pending + needed <= len(self._buf):
            if self._start:
                self._buf[:pending] = self._buf[self._start : self._end]
                self._start, self._end = 0, pending
            return
        bigger = bytearray(max(pending + needed, _INITIAL_BUFFER))
        bigger[:pending] = self._buf[self._start : self._end]
        self._replace(bigger, 0, pending)

    def _replace(self, buf: bytearray, start: int, end: int) -> None:
        # The old buffer is dropped, not released: a view a consumer still holds stays valid.
        self._buf = buf
        self._view = memoryview(buf)
        self._start, self._end = start, end
