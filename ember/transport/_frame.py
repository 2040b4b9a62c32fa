"""Frames: how the byte stream between two nodes is cut into messages.

A frame is ``u32 length | u8 channel | payload``, the length big-endian and counting the channel
byte and the payload, so it is at least 1. The decoder checks a frame's header as soon as its bytes
arrive, before it waits for the payload, so a peer cannot make it buffer more than one frame's
limit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum
from typing import NamedTuple, NoReturn

from .._errors import UsageError
from ._errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER_SIZE",
    "MAX_FRAME_SIZE",
    "SMALL_FRAME",
    "Channel",
    "Frame",
    "FrameDecoder",
    "FrameRun",
    "encode_frame",
]


class Channel(IntEnum):
    """The stream a frame belongs to; each has its own queue and drop policy in a connection."""

    CONTROL = 0
    """Handshake, heartbeats, and link, monitor and exit signals."""
    USER = 1
    """Messages between processes."""
    RAFT = 2
    """Raft consensus traffic."""
    MEMBERSHIP = 3
    """SWIM state sync and fallback probes over TCP."""
    REGISTRY = 4
    """Global name registry traffic."""
    PG = 5
    """Process group traffic."""
    ADMIN = 6
    """Requests from operators' tools to a node (fault injection) and their replies."""


class Frame(NamedTuple):
    """One decoded frame."""

    channel: Channel
    payload: bytes


class FrameRun(NamedTuple):
    """Two or more consecutive USER frames shorter than :data:`SMALL_FRAME`, as they came off the
    wire: ``data`` holds the frames, headers included, and ``lengths`` the length each header
    declares. Such a header is five msgpack positive fixints (``0 0 0 length 1``), so one
    unpacker can decode the whole run in C: see ``Codec.decode_run``."""

    data: bytes
    lengths: list[int]

    def frames(self) -> list[Frame]:
        """The run as separate frames (copies each payload)."""
        out: list[Frame] = []
        pos = 0
        for length in self.lengths:
            out.append(Frame(Channel.USER, self.data[pos + HEADER_SIZE : pos + 4 + length]))
            pos += 4 + length
        return out


HEADER_SIZE = 5
"""Bytes before the payload: the u32 length and the u8 channel."""
MAX_FRAME_SIZE = 0xFFFF_FFFF
"""The largest length a header can declare."""
SMALL_FRAME = 128
"""Frames with a declared length below this have a header that is also valid msgpack."""
RUN_BYTES = 4096
"""The most bytes in one :class:`FrameRun`. A run's messages are all decoded before the first
is delivered; in short runs they are delivered (and their envelopes freed) before the garbage
collector's youngest generation fills, instead of surviving into older generations that are
costly to collect (a third of the receive cost with runs of thousands of frames)."""
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
"""Default limit on a frame's declared length: the most one connection buffers for one frame."""

_USER = Channel.USER
_HEADER = struct.Struct(">IB")
_LENGTH = struct.Struct(">I")


def encode_frame(channel: Channel, payload: bytes) -> bytes:
    """Return the frame carrying ``payload`` on ``channel``."""
    length = len(payload) + 1
    if length > MAX_FRAME_SIZE:
        raise UsageError(f"a payload of {len(payload)} bytes does not fit in a frame")
    return _HEADER.pack(length, channel) + payload


class FrameDecoder:
    """Splits a byte stream into frames, however the stream was cut into pieces.

    ``max_frame_size`` bounds the length a header may declare (payload plus the channel byte);
    ``channels`` are those accepted, by default all of :class:`Channel`. A header that breaks
    either raises :class:`ProtocolError` (``"oversized"``, ``"malformed"`` for a zero length, or
    ``"unknown_channel"``), and so does every later call: the stream is lost past that point.

    It counts the complete frames it splits off, and their bytes (headers included), by channel
    number in :attr:`frames_by_channel` and :attr:`bytes_by_channel`: its own lists, or those
    :meth:`count_into` gives it (a connection's, the transport's totals). Counting here costs a
    list increment per frame and per run, in a loop that already reads each header.
    """

    __slots__ = (
        "_buffer",
        "_error",
        "_small",
        "_table",
        "bytes_by_channel",
        "frames_by_channel",
        "max_frame_size",
    )

    def __init__(
        self,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        channels: Iterable[Channel] = Channel,
    ) -> None:
        if not 1 <= max_frame_size <= MAX_FRAME_SIZE:
            raise UsageError(f"max_frame_size must be in 1..{MAX_FRAME_SIZE}, not {max_frame_size}")
        self.max_frame_size = max_frame_size
        table: list[Channel | None] = [None] * 256
        for channel in channels:
            table[channel] = Channel(channel)
        self._table = tuple(table)
        # USER frames below this length may be left in runs (and only if USER is accepted).
        self._small = min(SMALL_FRAME, max_frame_size + 1) if table[Channel.USER] else 0
        self._buffer = bytearray()
        self._error: ProtocolError | None = None
        self.frames_by_channel = [0] * len(Channel)
        """Complete frames split off so far, indexed by channel number."""
        self.bytes_by_channel = [0] * len(Channel)
        """Their bytes, headers included, indexed by channel number."""

    def count_into(self, frames: list[int], nbytes: list[int]) -> None:
        """Count the frames split off from now on in ``frames`` and ``nbytes`` (lists indexed
        by channel number, ``len(Channel)`` long) instead."""
        self.frames_by_channel = frames
        self.bytes_by_channel = nbytes

    @property
    def buffered(self) -> int:
        """How many bytes of a frame not yet complete are held."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Take the next bytes of the stream; return the frames they complete, in order."""
        return self._feed(data, False)  # type: ignore[return-value]

    def feed_runs(self, data: bytes | bytearray | memoryview) -> list[Frame | FrameRun]:
        """Like :meth:`feed`, but consecutive small USER frames come as one :class:`FrameRun`
        (one copy of their bytes, no object per frame): the receive path of a connection."""
        return self._feed(data, True)

    def _feed(self, data: bytes | bytearray | memoryview, runs: bool) -> list[Frame | FrameRun]:
        buffer = self._buffer
        if buffer:
            buffer += data
            frames, used = self._split(buffer, -1, runs)
            del buffer[:used]  # O(1): CPython advances a bytearray's start on a delete at its head
        else:
            # Nothing held: split straight out of ``data`` and copy only an incomplete tail.
            frames, used = self._split(data, -1, runs)
            if used < len(data):
                with memoryview(data) as view:
                    buffer += view[used:]
        return frames

    def add_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the stream without splitting them; see :meth:`next_frame`."""
        self._buffer += data

    def next_frame(self) -> Frame | None:
        """Return the next complete frame held, or ``None``; leaves the bytes after it in place."""
        frames, used = self._split(self._buffer, 1, False)
        del self._buffer[:used]
        return frames[0] if frames else None  # type: ignore[return-value]

    def take_buffered(self) -> bytes:
        """Return and forget the bytes held, unsplit: to hand the stream to another decoder."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _split(
        self, data: bytes | bytearray | memoryview, limit: int, runs: bool
    ) -> tuple[list[Frame | FrameRun], int]:
        """Frames complete in ``data`` (at most ``limit`` if positive; small USER frames in
        runs if ``runs``) and the bytes they span."""
        if self._error is not None:
            raise self._error
        frames: list[Frame | FrameRun] = []
        pos = 0
        end = len(data)
        table = self._table
        maximum = self.max_frame_size
        small = self._small if runs else 0
        unpack_from = _HEADER.unpack_from
        counts = self.frames_by_channel
        sizes = self.bytes_by_channel
        with memoryview(data) as view:
            while end - pos >= HEADER_SIZE:
                length, code = unpack_from(view, pos)
                if 0 < length < small and code == 1:  # Channel.USER, small: a run starts
                    start = pos
                    lengths: list[int] = []
                    append = lengths.append
                    run_end = min(end, start + RUN_BYTES)
                    last = end - HEADER_SIZE  # the last position a whole header fits at
                    while True:
                        stop = pos + 4 + length
                        if stop > run_end:
                            break
                        append(length)
                        pos = stop
                        if pos > last:
                            break
                        length, code = unpack_from(view, pos)
                        if code != 1 or not 0 < length < small:
                            break
                    if pos == start:
                        break  # its first frame is incomplete
                    counts[1] += len(lengths)
                    sizes[1] += pos - start
                    if len(lengths) > 1:
                        frames.append(FrameRun(view[start:pos].tobytes(), lengths))
                    else:  # one frame alone (calls going back and forth) is cheaper as it is
                        payload = view[start + HEADER_SIZE : pos].tobytes()
                        frames.append(tuple.__new__(Frame, (_USER, payload)))
                    continue
                if not 0 < length <= maximum:
                    self._fail_length(length)
                channel = table[code]
                if channel is None:
                    self._fail(ProtocolError("unknown_channel", f"channel {code} is not accepted"))
                stop = pos + 4 + length
                if stop > end:
                    break
                counts[code] += 1
                sizes[code] += length + 4
                payload = view[pos + HEADER_SIZE : stop].tobytes()
                # tuple.__new__ skips the Python-level NamedTuple.__new__ on this hot path.
                frames.append(tuple.__new__(Frame, (channel, payload)))
                pos = stop
                if len(frames) == limit:
                    break
            else:
                if end - pos == 4:
                    # Only the length has arrived: refuse an oversized frame already.
                    (length,) = _LENGTH.unpack_from(view, pos)
                    if not 0 < length <= maximum:
                        self._fail_length(length)
        return frames, pos

    def _fail_length(self, length: int) -> NoReturn:
        if length == 0:
            self._fail(ProtocolError("malformed", "frame length 0 leaves no room for the channel"))
        self._fail(
            ProtocolError("oversized", f"frame length {length} exceeds {self.max_frame_size}")
        )

    def _fail(self, error: ProtocolError) -> NoReturn:
        self._error = error
        raise error
