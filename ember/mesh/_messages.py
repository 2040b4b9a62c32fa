"""SWIM protocol messages, the member record, and their msgpack wire form.

Messages are frozen dataclasses. On the wire each is a msgpack array ``[tag, field, ...]`` and a
UDP packet is a msgpack array of messages, so a packet's size is exactly its array header plus
the sizes of its messages: the core packs packets to the byte, with the same encoding the shell
sends. :func:`decode_packet` checks every field and raises
:class:`~ember.transport.ProtocolError` (``"malformed"``) on anything else.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ..transport._errors import ProtocolError
from ._config import MAX_ADDRESS_SIZE, MAX_NAME_SIZE

__all__ = [
    "Ack",
    "Alive",
    "Dead",
    "IndirectPing",
    "Member",
    "MemberStatus",
    "Message",
    "Meta",
    "Nack",
    "Ping",
    "PushPull",
    "Suspect",
    "decode_message",
    "decode_packet",
    "encode_message",
    "encode_packet",
    "freeze_meta",
    "message_size",
    "packet_header_size",
]

Meta = Mapping[str, Any]
"""Node metadata: string keys, msgpack-encodable values (roles, capabilities, admin address,
Raft eligibility...). Versioned by the member's incarnation: every change bumps it."""

EMPTY_META: Meta = MappingProxyType({})


def freeze_meta(meta: Meta | None) -> Meta:
    """A read-only copy of ``meta`` (the shared empty mapping for None or empty)."""
    if not meta:
        return EMPTY_META
    if isinstance(meta, MappingProxyType):
        return meta
    return MappingProxyType(dict(meta))


class MemberStatus(enum.StrEnum):
    """Where a member stands in one member's view."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    FAILED = "failed"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class Member:
    """One member as some member sees it (also the record a push-pull carries)."""

    name: str
    address: str
    status: MemberStatus
    incarnation: int
    meta: Meta = field(default_factory=lambda: EMPTY_META)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (``ember members --json``)."""
        return {
            "name": self.name,
            "address": self.address,
            "status": self.status.value,
            "incarnation": self.incarnation,
            "meta": dict(self.meta),
        }


@dataclass(frozen=True, slots=True)
class Ping:
    """Are you alive? ``target`` names the member meant, so a new process at a reused address
    does not answer for its predecessor, and ``target_address`` the address probed, so a new
    incarnation of the member elsewhere (reached by name, over TCP) does not answer for its
    old self (``""``: any). The ack goes to ``source_address``."""

    seq: int
    target: str
    source: str
    source_address: str
    target_address: str = ""


@dataclass(frozen=True, slots=True)
class IndirectPing:
    """Please ping ``target`` for me and relay its ack; if ``nack``, answer :class:`Nack` when
    no ack came within ``timeout`` seconds, proving to the requester that we were reachable."""

    seq: int
    target: str
    target_address: str
    source: str
    source_address: str
    nack: bool
    timeout: float


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to the ping numbered ``seq`` (possibly relayed)."""

    seq: int
    source: str


@dataclass(frozen=True, slots=True)
class Nack:
    """A relay's word that it got our indirect ping ``seq`` but no ack from the target."""

    seq: int
    source: str


@dataclass(frozen=True, slots=True)
class Suspect:
    """``sender`` suspects ``node`` at ``incarnation``."""

    node: str
    incarnation: int
    sender: str


@dataclass(frozen=True, slots=True)
class Alive:
    """``node`` is alive at ``incarnation`` with this address and metadata."""

    node: str
    address: str
    incarnation: int
    meta: Meta = field(default_factory=lambda: EMPTY_META)


@dataclass(frozen=True, slots=True)
class Dead:
    """``sender`` declares ``node`` failed at ``incarnation``; from the node itself it is a
    graceful leave."""

    node: str
    incarnation: int
    sender: str

    @property
    def is_leave(self) -> bool:
        """True when the member announces its own departure."""
        return self.node == self.sender


@dataclass(frozen=True, slots=True)
class PushPull:
    """A full-state exchange (sent over TCP): ``sender``'s whole view. The receiver merges it
    and, unless this is the ``reply``, answers with its own. ``join`` marks a join request."""

    sender: str
    sender_address: str
    members: tuple[Member, ...]
    join: bool = False
    reply: bool = False


@dataclass(frozen=True, slots=True)
class Custom:
    """A broadcast of a layer above the mesh riding on gossip (``Membership.gossip``): ``key``
    is unique per broadcast (``topic#origin#n``), ``data`` its payload."""

    key: str
    data: bytes


Message = Ping | IndirectPing | Ack | Nack | Suspect | Alive | Dead | PushPull | Custom

_STATUS_CODES = {s: i for i, s in enumerate(MemberStatus)}
_STATUSES = tuple(MemberStatus)


def _fields(m: Message) -> list[Any]:
    match m:
        case Ping():
            return [0, m.seq, m.target, m.source, m.source_address, m.target_address]
        case IndirectPing():
            return [
                1,
                m.seq,
                m.target,
                m.target_address,
                m.source,
                m.source_address,
                m.nack,
                float(m.timeout),
            ]
        case Ack():
            return [2, m.seq, m.source]
        case Nack():
            return [3, m.seq, m.source]
        case Suspect():
            return [4, m.node, m.incarnation, m.sender]
        case Alive():
            return [5, m.node, m.address, m.incarnation, dict(m.meta)]
        case Dead():
            return [6, m.node, m.incarnation, m.sender]
        case PushPull():
            members = [
                [r.name, r.address, r.incarnation, _STATUS_CODES[r.status], dict(r.meta)]
                for r in m.members
            ]
            return [7, m.sender, m.sender_address, m.join, m.reply, members]
        case Custom():
            return [8, m.key, m.data]
    raise TypeError(f"not a SWIM message: {m!r}")  # pragma: no cover


def encode_message(message: Message) -> bytes:
    """The msgpack encoding of one message (also what one TCP frame of membership carries)."""
    data: bytes = msgpack.packb(_fields(message), use_bin_type=True)
    return data


def message_size(message: Message) -> int:
    """Bytes ``message`` takes on the wire, inside a packet or alone."""
    return len(encode_message(message))


def packet_header_size(count: int) -> int:
    """Bytes of the msgpack array header of a packet of ``count`` messages."""
    return 1 if count < 16 else 3 if count < 65536 else 5


def encode_packet(messages: Sequence[Message]) -> bytes:
    """One UDP packet's payload: a msgpack array of messages."""
    data: bytes = msgpack.packb([_fields(m) for m in messages], use_bin_type=True)
    return data


def decode_packet(data: bytes) -> list[Message]:
    """The messages of one packet; raises ``ProtocolError("malformed")`` on anything invalid."""
    raw = _unpack(data)
    if not isinstance(raw, list):
        raise ProtocolError("malformed", "a packet is not an array")
    return [_decode(item) for item in raw]


def decode_message(data: bytes) -> Message:
    """One message encoded with :func:`encode_message`."""
    return _decode(_unpack(data))


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:
        raise ProtocolError("malformed", f"bad msgpack: {exc}") from exc


def _str(v: Any, limit: int = MAX_NAME_SIZE) -> str:
    if not isinstance(v, str) or len(v.encode()) > limit:
        raise ProtocolError("malformed", f"bad string field {v!r:.60}")
    return v


def _int(v: Any) -> int:
    if v.__class__ is not int or v < 0:
        raise ProtocolError("malformed", f"bad integer field {v!r:.60}")
    return v


def _bool(v: Any) -> bool:
    if v.__class__ is not bool:
        raise ProtocolError("malformed", f"bad boolean field {v!r:.60}")
    return v


def _meta(v: Any) -> Meta:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise ProtocolError("malformed", f"bad metadata {v!r:.60}")
    return freeze_meta(v)


_ARITY = {0: 6, 1: 8, 2: 3, 3: 3, 4: 4, 5: 5, 6: 4, 7: 6, 8: 3}
MAX_CUSTOM_KEY = 2 * MAX_NAME_SIZE + 24
"""Longest key of a :class:`Custom` broadcast (topic, origin and counter)."""


def _decode(v: Any) -> Message:
    if not isinstance(v, list) or not v or v[0].__class__ is not int or _ARITY.get(v[0]) != len(v):
        raise ProtocolError("malformed", f"not a SWIM message: {v!r:.60}")
    a = MAX_ADDRESS_SIZE
    match v[0]:
        case 0:
            return Ping(_int(v[1]), _str(v[2]), _str(v[3]), _str(v[4], a), _str(v[5], a))
        case 1:
            timeout = v[7]
            if timeout.__class__ is not float or not 0 <= timeout < 3600:
                raise ProtocolError("malformed", f"bad timeout {timeout!r:.60}")
            return IndirectPing(
                _int(v[1]),
                _str(v[2]),
                _str(v[3], a),
                _str(v[4]),
                _str(v[5], a),
                _bool(v[6]),
                timeout,
            )
        case 2:
            return Ack(_int(v[1]), _str(v[2]))
        case 3:
            return Nack(_int(v[1]), _str(v[2]))
        case 4:
            return Suspect(_str(v[1]), _int(v[2]), _str(v[3]))
        case 5:
            return Alive(_str(v[1]), _str(v[2], a), _int(v[3]), _meta(v[4]))
        case 6:
            return Dead(_str(v[1]), _int(v[2]), _str(v[3]))
        case 8:
            if v[2].__class__ is not bytes:
                raise ProtocolError("malformed", "custom data is not bytes")
            return Custom(_str(v[1], MAX_CUSTOM_KEY), v[2])
        case _:
            if not isinstance(v[5], list):
                raise ProtocolError("malformed", "push-pull members are not an array")
            return PushPull(
                _str(v[1]), _str(v[2], a), _members(v[5]), join=_bool(v[3]), reply=_bool(v[4])
            )


def _members(items: Iterable[Any]) -> tuple[Member, ...]:
    out = []
    for r in items:
        if not isinstance(r, list) or len(r) != 5 or r[3].__class__ is not int:
            raise ProtocolError("malformed", f"bad member record {r!r:.60}")
        if not 0 <= r[3] < len(_STATUSES):
            raise ProtocolError("malformed", f"bad member status {r[3]!r}")
        out.append(
            Member(
                _str(r[0]), _str(r[1], MAX_ADDRESS_SIZE), _STATUSES[r[3]], _int(r[2]), _meta(r[4])
            )
        )
    return tuple(out)
