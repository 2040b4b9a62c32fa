"""Tests for framing in ember.transport._frame."""

from __future__ import annotations

import itertools

import pytest

from ember import UsageError
from ember.transport._errors import ProtocolError
from ember.transport._frame import (
    DEFAULT_MAX_FRAME_SIZE,
    Channel,
    Frame,
    FrameDecoder,
    encode_frame,
)

FRAMES = [
    Frame(Channel.CONTROL, b"hello"),
    Frame(Channel.USER, b""),
    Frame(Channel.RAFT, bytes(range(256))),
    Frame(Channel.PG, b"\x00"),
    Frame(Channel.MEMBERSHIP, b"x" * 3),
    Frame(Channel.REGISTRY, b"last"),
]
STREAM = b"".join(encode_frame(f.channel, f.payload) for f in FRAMES)


def test_channel_numbers_are_the_wire_values() -> None:
    assert [(c.name, c.value) for c in Channel] == [
        ("CONTROL", 0),
        ("USER", 1),
        ("RAFT", 2),
        ("MEMBERSHIP", 3),
        ("REGISTRY", 4),
        ("PG", 5),
        ("ADMIN", 6),
    ]


def test_encode_frame_layout() -> None:
    assert encode_frame(Channel.USER, b"abc") == b"\x00\x00\x00\x04\x01abc"
    assert encode_frame(Channel.CONTROL, b"") == b"\x00\x00\x00\x01\x00"


def test_whole_stream_in_one_feed() -> None:
    frames = FrameDecoder().feed(STREAM)
    assert frames == FRAMES
    assert all(type(f.channel) is Channel and type(f.payload) is bytes for f in frames)


def test_split_at_every_byte_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = FrameDecoder()
        frames = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert frames == FRAMES, cut
        assert decoder.buffered == 0


def test_split_at_every_pair_of_boundaries() -> None:
    # Three pieces: the middle one may start and end inside the same header or payload.
    stream = STREAM[:40] + STREAM[-20:]
    expected = FrameDecoder().feed(stream)
    for a, b in itertools.combinations(range(len(stream) + 1), 2):
        decoder = FrameDecoder()
        frames = decoder.feed(stream[:a]) + decoder.feed(stream[a:b]) + decoder.feed(stream[b:])
        assert frames == expected, (a, b)


def test_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    frames = [f for i in range(len(STREAM)) for f in decoder.feed(STREAM[i : i + 1])]
    assert frames == FRAMES


def test_accepts_bytearray_and_memoryview() -> None:
    decoder = FrameDecoder()
    data = bytearray(STREAM)
    frames = decoder.feed(data[:7]) + decoder.feed(memoryview(data)[7:])
    data[:] = b"\xff" * len(data)  # the decoder must have copied what it kept
    assert frames == FRAMES


def test_large_payload_in_small_chunks() -> None:
    payload = bytes(range(256)) * 4096
    stream = encode_frame(Channel.USER, payload) * 2
    decoder = FrameDecoder()
    frames = [f for i in range(0, len(stream), 1000) for f in decoder.feed(stream[i : i + 1000])]
    assert frames == [Frame(Channel.USER, payload)] * 2


def test_oversized_is_refused_from_the_length_alone() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    assert decoder.feed(b"\x00\x00\x00") == []
    with pytest.raises(ProtocolError) as info:
        decoder.feed(b"\x0b")  # length 11: the channel byte and payload never arrive
    assert info.value.kind == "oversized"
    assert decoder.buffered <= 4


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    assert decoder.feed(encode_frame(Channel.USER, b"x" * 9)) == [Frame(Channel.USER, b"x" * 9)]
    with pytest.raises(ProtocolError, match="oversized"):
        decoder.feed(encode_frame(Channel.USER, b"x" * 10))


def test_default_limit() -> None:
    assert FrameDecoder().max_frame_size == DEFAULT_MAX_FRAME_SIZE
    header = (DEFAULT_MAX_FRAME_SIZE + 1).to_bytes(4, "big") + b"\x01"
    with pytest.raises(ProtocolError, match="oversized"):
        FrameDecoder().feed(header)


def test_zero_length_is_malformed() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameDecoder().feed(b"\x00\x00\x00\x00")
    assert info.value.kind == "malformed"


@pytest.mark.parametrize("code", [7, 8, 127, 255])
def test_unknown_channel_is_refused_at_the_header(code: int) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError) as info:
        decoder.feed(b"\x00\x01\x00\x00" + bytes([code]))  # payload not sent yet
    assert info.value.kind == "unknown_channel"


def test_channels_can_be_restricted() -> None:
    decoder = FrameDecoder(channels=[Channel.CONTROL])
    assert decoder.feed(encode_frame(Channel.CONTROL, b"ok")) == [Frame(Channel.CONTROL, b"ok")]
    with pytest.raises(ProtocolError, match="unknown_channel"):
        decoder.feed(encode_frame(Channel.USER, b"no"))


def test_error_poisons_the_decoder() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x00\x00\x00\x00")
    with pytest.raises(ProtocolError, match="malformed"):
        decoder.feed(encode_frame(Channel.USER, b"fine"))


def test_error_after_good_frames_in_the_same_feed() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match="unknown_channel"):
        decoder.feed(encode_frame(Channel.USER, b"ok") + b"\x00\x00\x00\x01\x09")


def test_pull_one_frame_at_a_time() -> None:
    decoder = FrameDecoder()
    decoder.add_data(STREAM + b"\x00\x00")
    assert decoder.next_frame() == FRAMES[0]
    assert decoder.next_frame() == FRAMES[1]
    rest = decoder.take_buffered()
    assert rest == STREAM[len(encode_frame(*FRAMES[0])) + 5 :] + b"\x00\x00"
    assert decoder.buffered == 0
    assert decoder.next_frame() is None


def test_max_frame_size_is_validated() -> None:
    for bad in (0, -1, 2**32):
        with pytest.raises(UsageError):
            FrameDecoder(max_frame_size=bad)
    FrameDecoder(max_frame_size=2**32 - 1)


def test_payload_too_large_for_the_header() -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return 2**32

    with pytest.raises(UsageError):
        encode_frame(Channel.USER, Huge())


def _expected_counts(frames: list[Frame]) -> tuple[list[int], list[int]]:
    counts, sizes = [0] * len(Channel), [0] * len(Channel)
    for f in frames:
        counts[f.channel] += 1
        sizes[f.channel] += len(f.payload) + 5
    return counts, sizes


@pytest.mark.parametrize("runs", [False, True])
def test_the_decoder_counts_complete_frames_and_their_bytes_by_channel(runs: bool) -> None:
    small = [Frame(Channel.USER, b"%d" % i) for i in range(40)]  # a run when runs=True
    frames = FRAMES + small + [Frame(Channel.USER, b"u" * 500), *FRAMES]
    stream = b"".join(encode_frame(f.channel, f.payload) for f in frames)
    counts, sizes = _expected_counts(frames)
    for cut in (0, 7, len(stream) // 2, len(stream) - 1):
        decoder = FrameDecoder()
        feed = decoder.feed_runs if runs else decoder.feed
        feed(stream[:cut])
        assert sum(decoder.frames_by_channel) < len(frames), cut  # the frame cut is not counted
        feed(stream[cut:])
        assert (decoder.frames_by_channel, decoder.bytes_by_channel) == (counts, sizes), cut
        assert sum(decoder.bytes_by_channel) == len(stream)


def test_the_decoder_counts_into_the_lists_it_is_given() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(Channel.RAFT, b"before"))
    shared_counts, shared_sizes = [0] * len(Channel), [0] * len(Channel)
    decoder.count_into(shared_counts, shared_sizes)
    decoder.feed(encode_frame(Channel.PG, b"after") + encode_frame(Channel.PG, b""))
    assert shared_counts[Channel.PG] == 2 and shared_sizes[Channel.PG] == 10 + 5
    assert shared_counts[Channel.RAFT] == 0  # counted before, in the decoder's own lists
    assert decoder.frames_by_channel is shared_counts
