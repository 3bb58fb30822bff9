"""What both ends of a connection share: framing and the write-batching rule, with no I/O.

The protocol of each end is a sans-I/O state machine in the manner of h11: a `Session` is
fed the bytes its peer wrote (`get_buffer` + `buffer_updated`, asyncio's own names for a read
into a buffer, or `receive_data(bytes)`), and tells its owner what to write, and when. It
never touches a socket, a loop or a clock: the asyncio adapters (`HostConnection` on the
host, `StdioServer` in a plugin) move the bytes and own the timers, futures and tasks. The
host's state machine is `host_session.HostSession`, the plugin's `plugin_session.PluginSession`.

The batching rule (`push`), the same on both ends of the wire: the first frame since the peer
last wrote goes out at once; later ones are held back and leave together, at the end of the
loop turn (`on_hold` asks the adapter for that) or, for the frames a read itself produced, at
the end of that read. So a burst of calls, or of answers, reaches the other side in one write
and wakes it once instead of once per frame, and one call at a time is never held back. With
`batching` off (the plain path, `PLUGWIRE_FAST_PATHS`), every frame goes out at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any, Protocol

from .framing import FrameReader
from .messages import DEFAULT_MAX_FRAME, EnvelopeCodec

__all__ = ["Session", "Token"]


class Token(Protocol):
    """What a session resolves when a call's answer arrives: an asyncio future in the host's
    adapter, any object with these three methods in tests."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class _Waking(Protocol):
    left: int


class _NobodyWaking:
    left = 0


def _nothing() -> None:
    pass


class Session(FrameReader):
    """Framing and the batching rule; subclassed by each end's session.

    Args:
        max_frame: The largest frame accepted from the peer.
        batching: Whether frames are held back by the batching rule (else each goes out at once).
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, batching: bool = True) -> None:
        super().__init__(max_frame)
        #: Whether the batching rule holds frames back (the `batching` accelerator).
        self.batching = batching
        #: The envelope codec negotiated by the handshake (None before it).
        self.envelopes: EnvelopeCodec | None = None
        #: The largest frame the peer accepts (from its handshake).
        self.peer_max_frame = DEFAULT_MAX_FRAME
        #: Frames held back, to leave together (`take_held`).
        self.corked: bytearray | None = None
        #: Bytes handed out so far, held-back ones included (where each frame ends).
        self.written = 0
        #: Whether a frame went out since the peer last wrote (a read resets it).
        self.sent_since_read = False
        #: Inside a read that holds the frames it produces until its end (the plugin's).
        self.in_read = False
        #: Callers the adapter is still waking (while `left` is not 0, frames are held back).
        self.waking: _Waking = _NobodyWaking()
        #: Other work due in this loop turn (the loop's ready queue, when the adapter knows it):
        #: while it is not empty, frames are held back.
        self.due: Sized = ()
        #: Called when frames start to be held outside a read: the adapter arranges for
        #: `take_held()` to be written at the end of the loop turn.
        self.on_hold: Callable[[], None] = _nothing

    # ---------------------------------------------------------------- writing
    def push(self, frame: bytearray | bytes) -> bytearray | bytes | None:
        """The batching rule: `frame` if it goes out now (the caller writes it), else None
        (held back; it leaves with `take_held()`)."""
        self.written += len(frame)
        corked = self.corked
        if corked is not None:
            corked += frame
            return None
        if not self.batching:
            return frame
        if self.in_read:
            self.corked = frame if isinstance(frame, bytearray) else bytearray(frame)  # leaves at the end of the read
            return None
        if self.sent_since_read or self.waking.left or self.due:
            self.corked = frame if isinstance(frame, bytearray) else bytearray(frame)
            self.on_hold()
            return None
        self.sent_since_read = True
        return frame

    def take_held(self) -> bytearray | None:
        """The frames held back, to be written now together (None: none)."""
        data, self.corked = self.corked, None
        return data or None

    def data_to_send(self) -> bytes:
        """Everything held back, as bytes (b"": nothing); for tests and tooling."""
        return bytes(self.take_held() or b"")

    def frame_of(self, message: Any) -> bytearray:
        """The frame holding `message`, within the peer's limit.

        Raises:
            ProtocolError: The envelope is larger than the peer accepts (2001).
        """
        assert self.envelopes is not None, "a frame before the handshake"
        return self.envelopes.frame(message, self.peer_max_frame)
