"""Authenticated membership datagrams (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ember.mesh import SwimConfig
from ember.mesh._packet import (
    PACKET_OVERHEAD,
    Kind,
    decode_iam,
    encode_iam,
    mesh_key,
    open_packet,
    seal,
)
from ember.transport._errors import AuthenticationError, ProtocolError

KEY = mesh_key("cookie", "ember")


def test_a_sealed_datagram_opens_to_its_kind_and_body() -> None:
    data = seal(KEY, Kind.SWIM, b"body")
    assert len(data) == PACKET_OVERHEAD + 4
    assert open_packet(KEY, data) == (Kind.SWIM, b"body")


def test_the_overhead_fits_the_room_every_profile_reserves() -> None:
    for config in (SwimConfig.local(), SwimConfig.lan(), SwimConfig.wan()):
        assert config.packet_overhead >= PACKET_OVERHEAD


def test_keys_differ_by_cookie_and_by_cluster() -> None:
    assert len({KEY, mesh_key("other", "ember"), mesh_key("cookie", "other")}) == 3
    assert mesh_key(b"cookie", "ember") == KEY


@pytest.mark.parametrize("key", [mesh_key("other", "ember"), mesh_key("cookie", "prod")])
def test_a_datagram_sealed_with_another_key_is_refused(key: bytes) -> None:
    with pytest.raises(AuthenticationError):
        open_packet(KEY, seal(key, Kind.SWIM, b"x"))


def test_a_tampered_body_is_refused() -> None:
    data = bytearray(seal(KEY, Kind.SWIM, b"alive"))
    data[-1] ^= 1
    with pytest.raises(AuthenticationError):
        open_packet(KEY, bytes(data))


def test_truncated_unknown_version_and_unknown_kind_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="malformed"):
        open_packet(KEY, b"\x01\x00")
    with pytest.raises(ProtocolError, match="version"):
        open_packet(KEY, b"\x09" + seal(KEY, Kind.SWIM, b"x")[1:])
    import hashlib
    import hmac

    header = b"\x01\x63"
    forged = header + hmac.new(KEY, header + b"x", hashlib.sha256).digest() + b"x"
    with pytest.raises(ProtocolError, match="unknown datagram kind"):
        open_packet(KEY, forged)


def test_iam_round_trips_and_rejects_garbage() -> None:
    assert decode_iam(encode_iam(b"n0nce", "a")) == (b"n0nce", "a")
    for bad in (b"\xc1", encode_iam(b"n", "")[:-1], b"\x92\x01\x02", b"\x90"):
        with pytest.raises(ProtocolError):
            decode_iam(bad)


@given(st.binary(max_size=200))
def test_random_datagrams_raise_only_protocol_errors(data: bytes) -> None:
    try:
        open_packet(KEY, data)
    except ProtocolError:
        pass
