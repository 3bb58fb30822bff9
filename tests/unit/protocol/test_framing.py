"""Framing and envelopes of protocol v1, without processes."""

from __future__ import annotations

import msgspec
import pytest

from plugwire._protocol import (
    CallMsg,
    EnvelopeCodec,
    FrameReader,
    HostMessage,
    ResultMsg,
    choose_codec,
    choose_version,
)
from plugwire.errors import ErrorCode, ProtocolError


class Collector(FrameReader):
    def __init__(self, max_frame: int = 1 << 20) -> None:
        super().__init__(max_frame)
        self.frames: list[bytes] = []
        self.errors: list[ProtocolError] = []

    def frame_received(self, envelope: memoryview) -> None:
        self.frames.append(bytes(envelope))

    def frame_error(self, error: ProtocolError) -> None:
        self.errors.append(error)


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def feed_socket_style(reader: FrameReader, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        chunk = data[i : i + step]
        room = reader.get_buffer(len(chunk))
        room[: len(chunk)] = chunk
        reader.buffer_updated(len(chunk))


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_frames_split_across_reads_are_reassembled_in_order(step: int) -> None:
    bodies = [b"a", b"bc" * 50, b"xyz" * 1000]
    reader = Collector()
    feed_socket_style(reader, b"".join(frame(b) for b in bodies), step)
    assert reader.frames == bodies
    assert reader.buffered == 0


def test_pipe_style_data_received_gives_the_same_frames() -> None:
    reader = Collector()
    reader.data_received(frame(b"one") + frame(b"two")[:5])
    reader.data_received(frame(b"two")[5:])
    assert reader.frames == [b"one", b"two"]


def test_a_length_above_the_limit_is_refused_before_allocating() -> None:
    reader = Collector(max_frame=1024)
    capacity = reader.capacity
    reader.data_received((2**31).to_bytes(4, "big") + b"junk")
    assert [e.code for e in reader.errors] == [ErrorCode.FRAME_TOO_LARGE]
    assert reader.capacity == capacity
    reader.data_received(b"more bytes after the error are ignored")
    assert reader.frames == []
    assert len(reader.errors) == 1


def test_a_large_frame_within_the_limit_grows_the_buffer_then_gives_it_back() -> None:
    reader = Collector(max_frame=4 << 20)
    capacity = reader.capacity
    big = b"z" * (1 << 20)
    feed_socket_style(reader, frame(big) + frame(b"small"), 65536)
    assert reader.frames == [big, b"small"]
    assert reader.capacity == capacity


def test_a_zero_length_frame_is_an_invalid_envelope() -> None:
    reader = Collector()
    reader.data_received(b"\x00\x00\x00\x00")
    assert [e.code for e in reader.errors] == [ErrorCode.ENVELOPE_INVALID]


def test_a_stream_ending_mid_frame_reports_truncation_with_counts() -> None:
    reader = Collector()
    reader.data_received(frame(b"0123456789")[:7])
    error = reader.truncation_error()
    assert error is not None
    assert error.code == ErrorCode.FRAME_TRUNCATED
    assert "7 of 14 bytes" in error.message


def test_held_frames_wait_in_the_buffer_until_released() -> None:
    reader = Collector()
    reader.hold_frames()
    reader.data_received(frame(b"a") + frame(b"b"))
    assert reader.frames == []
    reader.release_frames()
    assert reader.frames == [b"a", b"b"]


def test_the_json_envelope_embeds_the_payload_as_json_not_as_bytes() -> None:
    codec = EnvelopeCodec("json", HostMessage)
    data = codec.frame(CallMsg(id=7, payload=msgspec.Raw(b'{"text":"hi"}')))
    body = msgspec.json.decode(bytes(data[4:]))
    assert body["payload"] == {"text": "hi"}
    assert body["type"] == "call"
    assert body["method"] == "execute"
    assert int.from_bytes(data[:4], "big") == len(data) - 4


def test_an_envelope_over_the_peers_limit_is_refused_before_sending() -> None:
    codec = EnvelopeCodec("msgpack", HostMessage)
    with pytest.raises(ProtocolError) as caught:
        codec.frame(ResultMsg(id=1, payload=msgspec.Raw(msgspec.msgpack.encode("x" * 500))), max_frame=100)
    assert caught.value.code == ErrorCode.FRAME_TOO_LARGE


def test_an_undecodable_envelope_is_a_coded_error_quoting_the_bytes() -> None:
    codec = EnvelopeCodec("msgpack", HostMessage)
    with pytest.raises(ProtocolError) as caught:
        codec.decode(b"\xc1\xc1")
    assert caught.value.code == ErrorCode.ENVELOPE_INVALID
    assert "\\xc1" in caught.value.message


def test_negotiation_picks_the_highest_common_version_and_the_hosts_preferred_codec() -> None:
    assert choose_version([1, 2], [1]) == 1
    assert choose_codec(["json", "msgpack"], ["msgpack", "json"]) == "json"
    with pytest.raises(ProtocolError) as caught:
        choose_version([2], [1])
    assert caught.value.code == ErrorCode.NO_COMMON_VERSION
    with pytest.raises(ProtocolError):
        choose_codec(["cbor"], ["msgpack"])
