"""Runs of small USER frames: how the receive path splits and decodes them."""

from __future__ import annotations

import msgpack  # type: ignore[import-untyped]
import pytest

from ember.transport._codec import Codec
from ember.transport._errors import ProtocolError
from ember.transport._frame import (
    RUN_BYTES,
    SMALL_FRAME,
    Channel,
    Frame,
    FrameDecoder,
    FrameRun,
    encode_frame,
)

CODEC = Codec()


def user(msg: object) -> bytes:
    return encode_frame(Channel.USER, CODEC.encode(msg))


def test_small_user_frames_come_as_one_run_between_other_frames() -> None:
    big = b"x" * SMALL_FRAME  # a frame of SMALL_FRAME + 1 bytes is not small
    stream = (
        user(("a", 1))
        + user([2])
        + encode_frame(Channel.RAFT, b"r")
        + user(3)
        + user(4)
        + encode_frame(Channel.USER, big)
        + user("z")  # a run of one is a frame
    )
    items = FrameDecoder().feed_runs(stream)
    assert [type(i) for i in items] == [FrameRun, Frame, FrameRun, Frame, Frame]
    first = items[0]
    assert isinstance(first, FrameRun)
    assert first.data == user(("a", 1)) + user([2])
    assert first.lengths == [len(user(("a", 1))) - 4, len(user([2])) - 4]
    assert first.frames() == [
        Frame(Channel.USER, CODEC.encode(("a", 1))),
        Frame(Channel.USER, CODEC.encode([2])),
    ]
    assert items[1] == Frame(Channel.RAFT, b"r")
    assert items[3] == Frame(Channel.USER, big)
    assert items[4] == Frame(Channel.USER, CODEC.encode("z"))
    # feed() still gives plain frames, the same ones.
    expanded = [f for i in items for f in (i.frames() if isinstance(i, FrameRun) else [i])]
    assert FrameDecoder().feed(stream) == expanded


def test_runs_are_cut_at_run_bytes_and_at_an_incomplete_frame() -> None:
    frame = user(("tell", 12345))
    count = 2 * RUN_BYTES // len(frame) + 3
    stream = frame * count
    decoder = FrameDecoder()
    items = decoder.feed_runs(stream[:-1])  # the last frame is one byte short
    runs = [i for i in items if isinstance(i, FrameRun)]
    assert len(runs) >= 2 and all(len(r.data) <= RUN_BYTES for r in runs)
    assert sum(len(r.lengths) for r in runs) + len(items) - len(runs) == count - 1
    assert decoder.buffered == len(frame) - 1
    (last,) = decoder.feed_runs(stream[-1:])
    assert last == Frame(Channel.USER, frame[5:])


def test_no_runs_when_user_frames_are_not_accepted_or_the_limit_is_low() -> None:
    stream = user(1) + user(2)
    with pytest.raises(ProtocolError) as err:
        FrameDecoder(channels=[Channel.CONTROL]).feed_runs(stream)
    assert err.value.kind == "unknown_channel"
    with pytest.raises(ProtocolError) as err:
        FrameDecoder(max_frame_size=1).feed_runs(stream)
    assert err.value.kind == "oversized"


def test_a_zero_length_user_header_is_malformed_in_run_mode_too() -> None:
    with pytest.raises(ProtocolError) as err:
        FrameDecoder().feed_runs(user(1) + b"\x00\x00\x00\x00\x01")
    assert err.value.kind == "malformed"


def test_decode_run_returns_the_messages() -> None:
    messages = [("tell", 1), [1, (2, 3)], {"k": (4,)}, None, "s" * 100]
    stream = b"".join(user(m) for m in messages)
    (run,) = FrameDecoder().feed_runs(stream)
    assert isinstance(run, FrameRun)
    assert CODEC.decode_run(run.data, run.lengths) == messages


def _run(*payloads: bytes) -> FrameRun:
    (run,) = FrameDecoder().feed_runs(b"".join(encode_frame(Channel.USER, p) for p in payloads))
    assert isinstance(run, FrameRun)
    return run


@pytest.mark.parametrize(
    "payloads",
    [
        (msgpack.packb(1) + msgpack.packb(2), msgpack.packb(3)),  # two values in one frame
        (msgpack.packb([1, 2])[:-1], msgpack.packb(3)),  # a value cut short
        (msgpack.packb(msgpack.ExtType(3, b"")), msgpack.packb(3)),  # a stray tuple marker
        (b"\xc1", msgpack.packb(3)),  # not msgpack
    ],
)
def test_decode_run_rejects_frames_that_are_not_one_message_each(
    payloads: tuple[bytes, ...],
) -> None:
    run = _run(*payloads)
    with pytest.raises(ProtocolError) as err:
        CODEC.decode_run(run.data, run.lengths)
    assert err.value.kind == "bad_msgpack"


def test_decode_run_rejects_lengths_that_do_not_match_the_data() -> None:
    run = _run(msgpack.packb(1), msgpack.packb(2))
    with pytest.raises(ProtocolError):
        CODEC.decode_run(run.data, [run.lengths[0], run.lengths[1] + 1])
    with pytest.raises(ProtocolError):
        CODEC.decode_run(run.data, run.lengths[:1])
