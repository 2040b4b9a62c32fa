"""Authenticated membership datagrams: how the shell wraps the core's packets for UDP.

A datagram is ``version u8 | kind u8 | tag (32 bytes) | body``. The tag is HMAC-SHA256 over
``version | kind | body`` with the cluster's mesh key, which is derived from the cookie and the
cluster name, so the cookie never crosses the wire and two clusters sharing a cookie still do
not hear each other. Pure functions: no sockets, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import IntEnum

import msgpack  # type: ignore[import-untyped]

from ..transport._cookie import normalize_cookie
from ..transport._errors import AuthenticationError, ProtocolError

__all__ = [
    "PACKET_OVERHEAD",
    "PACKET_VERSION",
    "Kind",
    "decode_holder",
    "decode_iam",
    "decode_whohas",
    "encode_holder",
    "encode_iam",
    "encode_whohas",
    "mesh_key",
    "open_packet",
    "seal",
]

PACKET_VERSION = 1
_TAG = 32
PACKET_OVERHEAD = 2 + _TAG
"""Bytes the wrapping adds to the core's packet (within ``SwimConfig.packet_overhead``)."""


class Kind(IntEnum):
    """What a datagram (or a membership-channel frame) carries."""

    SWIM = 0
    """A core packet: a msgpack array of SWIM messages."""
    WHOIS = 1
    """Who listens at this address? (body: a nonce) — seeds known only by address."""
    IAM = 2
    """The answer: msgpack ``[nonce, name]``."""
    MEMBERS = 3
    """A request for the member list (the ``ember members`` command; TCP only)."""
    MEMBERS_REPLY = 4
    """The member list, msgpack-encoded (TCP only)."""
    WHOHAS = 5
    """Who holds this node name? (body: msgpack ``[nonce, name]``) — asked of each seed before
    joining through it, so a node never joins under a name a live node already holds."""
    HOLDER = 6
    """The answer: msgpack ``[nonce, responder's name, the holder's address or nil]``."""


def mesh_key(cookie: str | bytes, cluster: str) -> bytes:
    """The key that authenticates membership datagrams of ``cluster``."""
    return hmac.new(
        normalize_cookie(cookie), b"ember-mesh-v1\0" + cluster.encode(), hashlib.sha256
    ).digest()


def seal(key: bytes, kind: Kind, body: bytes) -> bytes:
    """Wrap ``body`` into an authenticated datagram."""
    header = bytes((PACKET_VERSION, kind))
    tag = hmac.new(key, header + body, hashlib.sha256).digest()
    return header + tag + body


def open_packet(key: bytes, data: bytes) -> tuple[Kind, bytes]:
    """Check and unwrap a datagram: its kind and body.

    Raises :class:`ProtocolError` for a truncated datagram, an unknown version or kind, and
    :class:`AuthenticationError` for a bad tag (another cluster, another cookie, tampering).
    """
    if len(data) < PACKET_OVERHEAD:
        raise ProtocolError("malformed", f"a {len(data)}-byte datagram is shorter than a header")
    if data[0] != PACKET_VERSION:
        raise ProtocolError("version", f"membership datagram version {data[0]}")
    body = data[PACKET_OVERHEAD:]
    expected = hmac.new(key, data[:2] + body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, data[2:PACKET_OVERHEAD]):
        raise AuthenticationError("auth", "membership datagram with a bad tag")
    try:
        kind = Kind(data[1])
    except ValueError:
        raise ProtocolError("malformed", f"unknown datagram kind {data[1]}") from None
    return kind, body


def encode_iam(nonce: bytes, name: str) -> bytes:
    """The body of an ``IAM`` datagram: the ``WHOIS`` nonce and our name."""
    data: bytes = msgpack.packb([nonce, name], use_bin_type=True)
    return data


def decode_iam(body: bytes) -> tuple[bytes, str]:
    """Parse an ``IAM`` body; raises :class:`ProtocolError` if it is malformed."""
    try:
        value = msgpack.unpackb(body, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError("malformed", f"bad IAM datagram: {exc}") from exc
    match value:
        case [bytes() as nonce, str() as name] if name:
            return nonce, name
    raise ProtocolError("malformed", "an IAM datagram is not [nonce, name]")


def _decode(body: bytes, what: str) -> object:
    try:
        return msgpack.unpackb(body, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError("malformed", f"bad {what} datagram: {exc}") from exc


def encode_whohas(nonce: bytes, name: str) -> bytes:
    """The body of a ``WHOHAS`` datagram: a nonce and the name asked about."""
    data: bytes = msgpack.packb([nonce, name], use_bin_type=True)
    return data


def decode_whohas(body: bytes) -> tuple[bytes, str]:
    """Parse a ``WHOHAS`` body; raises :class:`ProtocolError` if it is malformed."""
    match _decode(body, "WHOHAS"):
        case [bytes() as nonce, str() as name] if name:
            return nonce, name
    raise ProtocolError("malformed", "a WHOHAS datagram is not [nonce, name]")


def encode_holder(nonce: bytes, responder: str, holder: str | None) -> bytes:
    """The body of a ``HOLDER`` datagram: the ``WHOHAS`` nonce, who answers, and the address
    of the live member holding the name (``None``: nobody the responder knows)."""
    data: bytes = msgpack.packb([nonce, responder, holder], use_bin_type=True)
    return data


def decode_holder(body: bytes) -> tuple[bytes, str, str | None]:
    """Parse a ``HOLDER`` body; raises :class:`ProtocolError` if it is malformed."""
    match _decode(body, "HOLDER"):
        case [bytes() as nonce, str() as responder, (str() | None) as holder] if responder:
            return nonce, responder, holder
    raise ProtocolError("malformed", "a HOLDER datagram is not [nonce, responder, holder]")
