"""Tests for the message codec in ember.transport._codec."""

from __future__ import annotations

import dataclasses
import enum
import pickle
from collections import OrderedDict
from typing import Any, NamedTuple

import msgpack
import pytest

from ember import UsageError
from ember.actors import Pid, Ref
from ember.transport._codec import EXT_PID, EXT_RECORD, EXT_REF, EXT_TUPLE, Codec
from ember.transport._errors import ProtocolError, UnsendableError


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0


@dataclasses.dataclass
class Envelope:
    to: Pid
    body: tuple[Any, ...]
    tags: list[str] = dataclasses.field(default_factory=list)
    seen: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Slotted:
    name: str
    blob: bytes

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("empty name")


class Colour(enum.IntEnum):
    RED = 1


class Named(NamedTuple):
    a: int


def same(a: Any, b: Any) -> bool:
    """Equal and of exactly the same types, all the way down (dicts keep their order)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return same(list(a), list(b)) and same(list(a.values()), list(b.values()))
    return bool(a == b)


@pytest.fixture
def codec() -> Codec:
    c = Codec()
    c.register(Point, code=1)
    c.register(Envelope)
    c.register(Slotted, code=0xFFFF_FFFF)
    return c


ROUNDTRIP = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1.5,
    "",
    "héllo",
    b"",
    b"\x00\xff",
    (),
    (1,),
    ("a", b"a"),
    [],
    [()],
    [[1], (1,)],
    ((1, (2, (3, ()))), [4, [5]]),
    {"k": (1, 2)},
    {(1, "a"): [1], 2: "two", b"raw": None, ((),): ()},
    {"nested": {"deeper": [{"x": (b"y",)}]}},
    msgpack.Timestamp(1, 5),
    Pid("node@host", 17, 3),
    Ref("node@host", 2**40, 0),
    (Pid("a", 0, 0), Ref("b", 1, 1), [Pid("c", 2, 2)]),
    {Pid("a", 1, 1): Ref("a", 2, 1)},
    Point(1, 2),
    [Point(3), (Point(4, 5),)],
    Envelope(Pid("n", 1, 1), ("hello", 1), ["t"]),
    Slotted("s", b"\x01"),
    {"p": Slotted("x", b"")},
]


@pytest.mark.parametrize("value", ROUNDTRIP, ids=repr)
def test_roundtrip_keeps_values_and_exact_types(codec: Codec, value: Any) -> None:
    assert same(codec.decode(codec.encode(value)), value)


def test_bytes_and_str_stay_distinct(codec: Codec) -> None:
    decoded = codec.decode(codec.encode(("a", b"a")))
    assert type(decoded[0]) is str
    assert type(decoded[1]) is bytes


def test_bool_and_int_stay_distinct(codec: Codec) -> None:
    assert codec.decode(codec.encode([True, 1, False, 0])) == [True, 1, False, 0]
    assert [type(x) for x in codec.decode(codec.encode([True, 1]))] == [bool, int]


def test_bytearray_and_memoryview_arrive_as_bytes(codec: Codec) -> None:
    assert same(codec.decode(codec.encode([bytearray(b"ab"), memoryview(b"cd")])), [b"ab", b"cd"])


def test_wire_format_is_pinned(codec: Codec) -> None:
    # A change here breaks every running cluster: bump the protocol version with it.
    assert codec.encode(("a", 1)) == b"\x93\xc7\x00\x03\xa1a\x01"
    assert codec.encode([1]) == b"\x91\x01"
    assert codec.encode(Pid("n", 1, 2)) == b"\xc7\x05\x01\x93\xa1n\x01\x02"
    assert codec.encode(Ref("n", 1, 2)) == b"\xc7\x05\x02\x93\xa1n\x01\x02"
    assert codec.encode(Point(7)) == b"\x92\xd4\x04\x01\x82\xa1x\x07\xa1y\x00"
    assert (EXT_PID, EXT_REF, EXT_TUPLE, EXT_RECORD) == (1, 2, 3, 4)


def test_tuple_costs_three_bytes_over_raw_msgpack(codec: Codec) -> None:
    message = ("call", 12345, "hello world", b"payload!", True, 7)
    assert len(codec.encode(message)) == len(msgpack.packb(message)) + 3


def test_dataclass_fields_travel_by_name(codec: Codec) -> None:
    data = codec.encode(Point(1, 2))
    _, body = msgpack.unpackb(data, ext_hook=lambda code, data: (code, data))
    assert body == {"x": 1, "y": 2}


def test_init_false_fields_are_not_sent(codec: Codec) -> None:
    env = Envelope(Pid("n", 1, 1), ())
    env.seen = 5
    assert codec.decode(codec.encode(env)).seen == 0


def test_record_missing_field_takes_default_and_unknown_field_is_dropped(codec: Codec) -> None:
    marker = msgpack.ExtType(EXT_RECORD, msgpack.packb(1))
    assert codec.decode(msgpack.packb([marker, {"x": 5}])) == Point(5, 0)
    assert codec.decode(msgpack.packb([marker, {"x": 5, "z": 9}])) == Point(5, 0)


def test_record_with_loosely_packed_type_id_still_decodes(codec: Codec) -> None:
    marker = msgpack.ExtType(EXT_RECORD, b"\xce\x00\x00\x00\x01")  # 1 as a uint32
    assert codec.decode(msgpack.packb([marker, {"x": 5}])) == Point(5)


def test_record_named_by_path_when_no_code(codec: Codec) -> None:
    data = codec.encode(Envelope(Pid("n", 1, 1), ()))
    assert f"{__name__}.Envelope".encode() in data


def test_codecs_do_not_share_registrations(codec: Codec) -> None:
    other = Codec()
    with pytest.raises(UnsendableError):
        other.encode(Point(1))
    with pytest.raises(ProtocolError):
        other.decode(codec.encode(Point(1)))


def test_register_rules() -> None:
    codec = Codec()
    assert codec.register(Point, code=5) is Point
    assert codec.register(Point, code=5) is Point  # the same again is harmless
    with pytest.raises(UsageError, match="already registered"):
        codec.register(Point, code=6)
    with pytest.raises(UsageError, match="already taken"):
        codec.register(Slotted, code=5)
    with pytest.raises(UsageError, match="only dataclasses"):
        codec.register(dict)
    with pytest.raises(UsageError, match="only dataclasses"):
        codec.register(Point(1, 2))  # type: ignore[arg-type]
    for bad in (-1, 2**32, "7", True):
        with pytest.raises(UsageError, match="code must be"):
            codec.register(Slotted, code=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        ({1, 2}, "set"),
        (Colour.RED, "Colour.*subclass of int"),
        (OrderedDict(a=1), "OrderedDict.*subclass of dict"),
        (Named(1), "Named.*subclass of tuple"),
        (Point, "type"),
        (2**64, "int"),
        (-(2**63) - 1, "int"),
        ({"deep": [1, (2, [3j])]}, "complex"),
        (dataclasses.make_dataclass("Unregistered", ["a"])(1), "Unregistered"),
    ],
    ids=repr,
)
def test_unsendable_values_raise_naming_the_type(codec: Codec, value: Any, type_name: str) -> None:
    with pytest.raises(UnsendableError, match=type_name) as info:
        codec.encode(value)
    assert isinstance(info.value, TypeError)
    assert codec.encode((1, 2)) == b"\x93\xc7\x00\x03\x01\x02"  # the packer is still sound


def test_unsendable_reports_the_inner_type(codec: Codec) -> None:
    with pytest.raises(UnsendableError) as info:
        codec.encode(("ok", [frozenset()]))
    assert info.value.value_type is frozenset


def test_cycles_and_lone_surrogates_are_unsendable(codec: Codec) -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(UnsendableError, match="list"):
        codec.encode(cycle)
    with pytest.raises(UnsendableError, match="str"):
        codec.encode("\ud800")


def nested(depth: int, kind: type) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = kind([value])
    return value


@pytest.mark.parametrize("kind", [tuple, list])
def test_nesting_that_encodes_also_decodes(codec: Codec, kind: type) -> None:
    data = codec.encode(nested(1000, kind))
    assert codec.encode(codec.decode(data)) == data  # == on the values would hit RecursionError
    with pytest.raises(UnsendableError, match="recursion"):
        codec.encode(nested(1100, kind))


def test_errors_pickle_with_their_fields() -> None:
    err = pickle.loads(pickle.dumps(UnsendableError(set, "why")))
    assert (err.value_type, err.reason) == (set, "why")
    perr = pickle.loads(pickle.dumps(ProtocolError("bad_msgpack", "detail")))
    assert (perr.kind, perr.detail, str(perr)) == ("bad_msgpack", "detail", "bad_msgpack: detail")


def _ext(code: int, data: bytes = b"") -> bytes:
    return msgpack.packb(msgpack.ExtType(code, data))


def _tuple_mark() -> msgpack.ExtType:
    return msgpack.ExtType(EXT_TUPLE, b"")


BAD_PAYLOADS = {
    "empty": b"",
    "truncated": b"\x93\x01",
    "trailing bytes": b"\x01\x02",
    "reserved byte": b"\xc1",
    "bad utf-8": b"\xa2\xff\xfe",
    "unknown ext": _ext(99, b"x"),
    "tuple marker with data": _ext(EXT_TUPLE, b"x"),
    "stray tuple marker at top": _ext(EXT_TUPLE),
    "stray tuple marker in map": msgpack.packb({"a": _tuple_mark()}),
    "tuple marker past the head": msgpack.packb([1, _tuple_mark()]),
    "two tuple markers": msgpack.packb([_tuple_mark(), _tuple_mark()]),
    "pid not an array": _ext(EXT_PID, msgpack.packb("n")),
    "pid short": _ext(EXT_PID, msgpack.packb(["n", 1])),
    "pid bad types": _ext(EXT_PID, msgpack.packb(["n", "1", 2])),
    "pid bool serial": _ext(EXT_PID, msgpack.packb(["n", True, 2])),
    "ref garbage": _ext(EXT_REF, b"\xc1"),
    "unregistered record": msgpack.packb([msgpack.ExtType(EXT_RECORD, msgpack.packb(42)), {}]),
    "record id of wrong type": msgpack.packb([msgpack.ExtType(EXT_RECORD, msgpack.packb(1.0)), {}]),
    "record body not a map": msgpack.packb([msgpack.ExtType(EXT_RECORD, msgpack.packb(1)), 5]),
    "record missing field": msgpack.packb([msgpack.ExtType(EXT_RECORD, msgpack.packb(1)), {}]),
    "record rejected by post_init": msgpack.packb(
        [msgpack.ExtType(EXT_RECORD, msgpack.packb(0xFFFF_FFFF)), {"name": "", "blob": b""}]
    ),
    "stray record marker": msgpack.packb(msgpack.ExtType(EXT_RECORD, msgpack.packb(1))),
    "nested too deep": b"\x91" * 5000 + b"\x01",
    "unhashable key": msgpack.packb({(1,): 2}),  # a list, not a tuple, as a key
    "bad timestamp": b"\xc7\x00\xff",  # ext -1 is msgpack's timestamp; it needs 4+ bytes
}


@pytest.mark.parametrize("payload", BAD_PAYLOADS.values(), ids=BAD_PAYLOADS.keys())
def test_bad_payloads_raise_protocol_error(codec: Codec, payload: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode(payload)
    assert info.value.kind == "bad_msgpack"
    with pytest.raises(ProtocolError):
        codec.decode_batch([codec.encode(1), payload])


def test_decode_recovers_after_an_error(codec: Codec) -> None:
    with pytest.raises(ProtocolError):
        codec.decode(BAD_PAYLOADS["stray tuple marker in map"])
    assert codec.decode(codec.encode((1, 2))) == (1, 2)


def test_decode_batch_matches_decode(codec: Codec) -> None:
    payloads = [codec.encode(v) for v in ROUNDTRIP]
    decoded = codec.decode_batch(payloads)
    assert all(same(a, b) for a, b in zip(decoded, ROUNDTRIP, strict=True))
    assert codec.decode_batch([]) == []


def test_decode_batch_needs_one_message_per_payload(codec: Codec) -> None:
    one, two = codec.encode(1), codec.encode(2)
    with pytest.raises(ProtocolError, match="bad_msgpack"):  # a batch of one is decode()d
        codec.decode_batch([one + two])
    with pytest.raises(ProtocolError, match="one message each"):
        codec.decode_batch([one, one[:0]])
    with pytest.raises(ProtocolError, match="bad_msgpack"):
        codec.decode_batch([codec.encode((1, 2))[:-1]])
