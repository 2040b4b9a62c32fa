"""Property tests for the wire: what a hostile or broken peer sends raises ProtocolError only.

Hypothesis prints the falsifying example and a ``@reproduce_failure`` blob to replay it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember.actors import Pid, Ref
from ember.transport._codec import Codec
from ember.transport._errors import ProtocolError
from ember.transport._frame import Channel, Frame, FrameDecoder, FrameRun, encode_frame
from ember.transport._handshake import Handshake, SendBytes

FUZZ = settings(
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclasses.dataclass(frozen=True)
class Item:
    name: str
    qty: int = 1


def make_codec() -> Codec:
    codec = Codec()
    codec.register(Item, code=3)
    return codec


CODEC = make_codec()

names = st.text(min_size=1, max_size=12)
ids = st.integers(min_value=0, max_value=2**64 - 1)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.builds(Pid, names, ids, st.integers(0, 2**32 - 1))
    | st.builds(Ref, names, ids, st.integers(0, 2**32 - 1))
)
hashables = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=5,
)
messages = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(hashables, inner, max_size=4)
        | st.builds(Item, st.text(max_size=5), st.integers(-10, 10))
    ),
    max_leaves=20,
)
frames = st.builds(Frame, st.sampled_from(Channel), st.binary(max_size=40))


def same(a: Any, b: Any) -> bool:
    """Equal and of exactly the same types, all the way down (dicts keep their order)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return same(list(a), list(b)) and same(list(a.values()), list(b.values()))
    return bool(a == b)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[i:j] for i, j in zip([0, *points], [*points, len(data)], strict=True)]


def feed_all(decoder: FrameDecoder, pieces: list[bytes]) -> list[Frame]:
    return [f for piece in pieces for f in decoder.feed(piece)]


def feed_runs_all(decoder: FrameDecoder, pieces: list[bytes]) -> list[Frame | FrameRun]:
    return [f for piece in pieces for f in decoder.feed_runs(piece)]


def expand(items: list[Frame | FrameRun]) -> list[Frame]:
    return [f for i in items for f in (i.frames() if isinstance(i, FrameRun) else [i])]


@FUZZ
@given(messages)
def test_messages_roundtrip(message: Any) -> None:
    assert same(CODEC.decode(CODEC.encode(message)), message)


@FUZZ
@given(st.lists(messages, max_size=5))
def test_batches_roundtrip(batch: list[Any]) -> None:
    decoded = CODEC.decode_batch([CODEC.encode(m) for m in batch])
    assert same(decoded, batch)


@FUZZ
@given(st.lists(frames, max_size=8), st.lists(st.integers(min_value=0), max_size=6))
def test_frame_streams_roundtrip_however_cut(expected: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f.channel, f.payload) for f in expected)
    decoder = FrameDecoder()
    assert feed_all(decoder, chunked(stream, cuts)) == expected
    assert decoder.buffered == 0
    decoder = FrameDecoder()
    assert expand(feed_runs_all(decoder, chunked(stream, cuts))) == expected
    assert decoder.buffered == 0


@FUZZ
@given(st.lists(messages, min_size=1, max_size=8), st.lists(st.integers(min_value=0), max_size=4))
def test_runs_decode_to_the_messages_sent(batch: list[Any], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(Channel.USER, CODEC.encode(m)) for m in batch)
    decoded: list[Any] = []
    for item in feed_runs_all(FrameDecoder(), chunked(stream, cuts)):
        if isinstance(item, FrameRun):
            decoded += CODEC.decode_run(item.data, item.lengths)
        else:
            decoded.append(CODEC.decode(item.payload))
    assert same(decoded, batch)


@FUZZ
@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=4))
def test_random_bytes_raise_only_protocol_error(data: bytes, cuts: list[int]) -> None:
    try:
        feed_all(FrameDecoder(max_frame_size=1024), chunked(data, cuts))
    except ProtocolError:
        pass
    try:
        CODEC.decode(data)
    except ProtocolError:
        pass
    try:
        CODEC.decode_batch([data, data])
    except ProtocolError:
        pass
    try:
        CODEC.decode_run(data, [len(data) // 2 + 1, len(data) - len(data) // 2 - 4])
    except ProtocolError:
        pass


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, byte in edits:
        at = where % (len(buf) + 1)
        if op == "insert":
            buf[at:at] = bytes([byte])
        elif buf and op == "flip":
            buf[at % len(buf)] ^= byte or 1
        elif buf:
            del buf[at % len(buf)]
    return bytes(buf)


@FUZZ
@given(
    st.lists(messages, min_size=1, max_size=4),
    mutations,
    st.lists(st.integers(min_value=0), max_size=4),
)
def test_mutated_streams_raise_only_protocol_error(
    batch: list[Any], edits: list[tuple[str, int, int]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(Channel.USER, CODEC.encode(m)) for m in batch)
    mutated = chunked(mutate(stream, edits), cuts)
    try:
        for item in feed_runs_all(FrameDecoder(max_frame_size=4096), mutated):
            if isinstance(item, FrameRun):
                CODEC.decode_run(item.data, item.lengths)
    except ProtocolError:
        pass
    try:
        decoded = feed_all(FrameDecoder(max_frame_size=4096), mutated)
    except ProtocolError:
        return
    for frame in decoded:
        try:
            CODEC.decode(frame.payload)
        except ProtocolError:
            pass
    try:
        CODEC.decode_batch([f.payload for f in decoded])
    except ProtocolError:
        pass


@FUZZ
@given(messages, mutations)
def test_mutated_payloads_raise_only_protocol_error(
    message: Any, edits: list[tuple[str, int, int]]
) -> None:
    try:
        CODEC.decode(mutate(CODEC.encode(message), edits))
    except ProtocolError:
        pass


def _pair() -> tuple[Handshake, Handshake]:
    # Fixed nonces: every pair exchanges exactly the messages below.
    opts: dict[str, Any] = {"cluster": "c", "cookie": b"k", "creation": 1}
    i = Handshake("initiator", node_name="a", nonce_source=lambda n: b"\x01" * n, **opts)
    a = Handshake("acceptor", node_name="b", nonce_source=lambda n: b"\x02" * n, **opts)
    return i, a


def _honest_messages() -> tuple[bytes, bytes, bytes]:
    i, a = _pair()
    hello = i.initiate()
    (welcome,) = a.receive_data(hello)
    assert isinstance(welcome, SendBytes)
    proof = i.receive_data(welcome.data)[0]
    assert isinstance(proof, SendBytes)
    return hello, welcome.data, proof.data


HELLO, WELCOME, PROOF = _honest_messages()


@FUZZ
@given(mutations, st.sampled_from(["hello", "welcome", "proof"]))
def test_mutated_handshakes_fail_only_with_protocol_error(
    edits: list[tuple[str, int, int]], which: str
) -> None:
    i, a = _pair()
    i.initiate()
    if which == "hello":
        target, data = a, HELLO
    elif which == "welcome":
        target, data = i, WELCOME
    else:
        a.receive_data(HELLO)
        target, data = a, PROOF
    try:
        target.receive_data(mutate(data, edits))
    except ProtocolError:
        pass
