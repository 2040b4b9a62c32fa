"""Tests for the handshake state machine in ember.transport._handshake.

Two handshakes talk through in-memory bytes; an attacker is played by hand-made messages.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from ember import UsageError
from ember.transport._errors import AuthenticationError, ProtocolError
from ember.transport._frame import Channel, Frame, FrameDecoder, encode_frame
from ember.transport._handshake import (
    _ACCEPTOR_LABEL,
    _INITIATOR_LABEL,
    CHALLENGE_SIZE,
    HANDSHAKE_MAX_FRAME_SIZE,
    MAX_DETAIL,
    PROTOCOL_VERSION,
    Established,
    Event,
    Handshake,
    HandshakeState,
    SendBytes,
    _Peer,
    _proof,
    _transcript,
    reject_frame,
)

COOKIE = b"cluster secret"


def nonces(seed: int) -> Callable[[int], bytes]:
    """A deterministic nonce source: each call returns fresh bytes."""
    counter = itertools.count()
    return lambda n: bytes([seed, next(counter)]) * (n // 2)


def initiator(name: str = "a@h", **kw: Any) -> Handshake:
    opts: dict[str, Any] = {
        "node_name": name,
        "cluster": "prod",
        "cookie": COOKIE,
        "creation": 1,
        "nonce_source": nonces(1),
    }
    return Handshake("initiator", **(opts | kw))


def acceptor(name: str = "b@h", **kw: Any) -> Handshake:
    opts: dict[str, Any] = {
        "node_name": name,
        "cluster": "prod",
        "cookie": COOKIE,
        "creation": 2,
        "nonce_source": nonces(2),
    }
    return Handshake("acceptor", **(opts | kw))


def sent(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, SendBytes))


def message(frame_bytes: bytes) -> dict[str, Any]:
    (frame,) = FrameDecoder().feed(frame_bytes)
    assert frame.channel is Channel.CONTROL
    decoded: dict[str, Any] = msgpack.unpackb(frame.payload)
    return decoded


def frame(fields: dict[str, Any]) -> bytes:
    return encode_frame(Channel.CONTROL, msgpack.packb(fields))


def hello(**kw: Any) -> dict[str, Any]:
    fields = {
        "type": "hello",
        "version": PROTOCOL_VERSION,
        "cluster": "prod",
        "name": "m@h",
        "creation": 9,
        "challenge": b"\x07" * CHALLENGE_SIZE,
    }
    return fields | kw


def handshake(i: Handshake, a: Handshake) -> tuple[list[Event], list[Event]]:
    """Run a full handshake; return the events each side produced."""
    welcome = a.receive_data(i.initiate())
    i_events = i.receive_data(sent(welcome))
    a_events = welcome + a.receive_data(sent(i_events))
    return i_events, a_events


def test_both_sides_establish() -> None:
    i, a = initiator(), acceptor()
    assert (i.state, a.state) == (HandshakeState.IDLE, HandshakeState.AWAIT_HELLO)
    hello_bytes = i.initiate()
    assert i.state is HandshakeState.AWAIT_WELCOME
    welcome = a.receive_data(hello_bytes)
    assert [type(e) for e in welcome] == [SendBytes]
    assert a.state is HandshakeState.AWAIT_PROOF
    i_events = i.receive_data(sent(welcome))
    assert i_events[1:] == [Established("b@h", 2, PROTOCOL_VERSION)]
    assert i.state is HandshakeState.ESTABLISHED
    assert a.receive_data(sent(i_events)) == [Established("a@h", 1, PROTOCOL_VERSION)]
    assert a.state is HandshakeState.ESTABLISHED
    assert i.peer == Established("b@h", 2, PROTOCOL_VERSION)
    assert a.peer == Established("a@h", 1, PROTOCOL_VERSION)
    assert i.trailing_data == a.trailing_data == b""
    assert i.rejection is None and a.rejection is None


def test_messages_carry_what_the_design_says_and_never_the_cookie() -> None:
    i, a = initiator(), acceptor()
    hello_bytes = i.initiate()
    welcome = sent(a.receive_data(hello_bytes))
    proof = sent(i.receive_data(welcome))
    assert set(message(hello_bytes)) == {
        "type",
        "version",
        "cluster",
        "name",
        "creation",
        "challenge",
    }
    assert set(message(welcome)) == set(message(hello_bytes)) | {"proof"}
    assert set(message(proof)) == {"type", "proof"}
    for data in (hello_bytes, welcome, proof):
        assert COOKIE not in data
        assert len(data) < HANDSHAKE_MAX_FRAME_SIZE


def test_bytes_delivered_one_at_a_time() -> None:
    i, a = initiator(), acceptor()

    def trickle(hs: Handshake, data: bytes) -> list[Event]:
        return [e for k in range(len(data)) for e in hs.receive_data(data[k : k + 1])]

    welcome = trickle(a, i.initiate())
    i_events = trickle(i, sent(welcome))
    assert trickle(a, sent(i_events)) == [Established("a@h", 1, PROTOCOL_VERSION)]
    assert i.state is a.state is HandshakeState.ESTABLISHED


def test_pipelined_frames_after_the_proof_are_trailing_data() -> None:
    i, a = initiator(), acceptor()
    welcome = a.receive_data(i.initiate())
    i_events = i.receive_data(sent(welcome))
    early = encode_frame(Channel.USER, b"first") + encode_frame(Channel.RAFT, b"x" * 10_000)
    events = a.receive_data(sent(i_events) + early + b"\x00\x00")
    assert events == [Established("a@h", 1, PROTOCOL_VERSION)]
    assert a.trailing_data == early + b"\x00\x00"
    decoder = FrameDecoder()
    assert decoder.feed(a.trailing_data) == [
        Frame(Channel.USER, b"first"),
        Frame(Channel.RAFT, b"x" * 10_000),
    ]


def test_initiator_keeps_bytes_after_the_welcome() -> None:
    i, a = initiator(), acceptor()
    welcome = sent(a.receive_data(i.initiate()))
    extra = encode_frame(Channel.CONTROL, b"\x90")
    i.receive_data(welcome + extra)
    assert i.trailing_data == extra


def test_wrong_cookie_fails_at_the_initiator_first() -> None:
    i, a = initiator(cookie=b"guess"), acceptor()
    welcome = a.receive_data(i.initiate())
    with pytest.raises(AuthenticationError) as info:
        i.receive_data(sent(welcome))
    assert info.value.kind == "auth"
    assert i.state is HandshakeState.FAILED
    assert i.peer is None
    assert i.rejection is not None
    assert message(i.rejection) == {
        "type": "reject",
        "kind": "auth",
        "version": PROTOCOL_VERSION,
        "detail": info.value.detail,
    }
    with pytest.raises(AuthenticationError, match=r"rejected by peer: .*cookies differ"):
        a.receive_data(i.rejection)
    assert a.rejection is None  # nobody answers a reject


def test_wrong_cookie_at_the_acceptor() -> None:
    # An attacker that skips checking the acceptor's proof must still prove itself.
    a = acceptor()
    welcome = message(sent(a.receive_data(frame(hello()))))
    fake = _Peer("m@h", 9, b"\x07" * CHALLENGE_SIZE)
    me = _Peer("b@h", 2, welcome["challenge"])
    transcript = _transcript(PROTOCOL_VERSION, "prod", fake, me)
    bad = _proof(b"guess", _INITIATOR_LABEL, transcript)
    with pytest.raises(AuthenticationError, match="auth"):
        a.receive_data(frame({"type": "proof", "proof": bad}))
    assert a.peer is None
    good = _proof(COOKIE, _INITIATOR_LABEL, transcript)  # and the same with the cookie succeeds
    b = acceptor(nonce_source=nonces(2))
    b.receive_data(frame(hello()))
    assert b.receive_data(frame({"type": "proof", "proof": good})) == [
        Established("m@h", 9, PROTOCOL_VERSION)
    ]


def test_wrong_cluster_at_the_acceptor_names_both_clusters_on_both_sides() -> None:
    i, a = initiator(cluster="staging"), acceptor()
    with pytest.raises(AuthenticationError) as info:
        a.receive_data(i.initiate())
    assert info.value.kind == "cluster"
    both = "node 'a@h' is in cluster 'staging', node 'b@h' in cluster 'prod'"
    assert info.value.detail == both
    assert a.rejection is not None
    with pytest.raises(AuthenticationError) as info:
        i.receive_data(a.rejection)
    assert (info.value.kind, info.value.detail) == ("cluster", f"rejected by peer: {both}")


def test_wrong_cluster_at_the_initiator() -> None:
    i = initiator()
    i.initiate()
    with pytest.raises(AuthenticationError, match="cluster"):
        i.receive_data(frame(hello(type="welcome", cluster="staging", proof=b"\x00" * 32)))


def test_version_mismatch_at_the_acceptor() -> None:
    a = acceptor()
    with pytest.raises(ProtocolError) as info:
        a.receive_data(
            frame({"type": "hello", "version": PROTOCOL_VERSION + 1, "anything": "else"})
        )
    assert info.value.kind == "version"
    assert a.rejection is not None
    assert message(a.rejection) == {
        "type": "reject",
        "kind": "version",
        "version": PROTOCOL_VERSION,
        "detail": f"peer speaks protocol version {PROTOCOL_VERSION + 1}, we {PROTOCOL_VERSION}",
    }


def test_version_mismatch_at_the_initiator() -> None:
    i = initiator()
    i.initiate()
    with pytest.raises(ProtocolError, match="version"):
        i.receive_data(frame(hello(type="welcome", version=0, proof=b"\x00" * 32)))


def test_acceptor_proof_reflected_back_fails() -> None:
    # The attacker echoes the acceptor's own proof as the initiator's: the labels differ.
    a = acceptor()
    welcome = message(sent(a.receive_data(frame(hello()))))
    with pytest.raises(AuthenticationError, match="auth"):
        a.receive_data(frame({"type": "proof", "proof": welcome["proof"]}))


def test_proof_reflected_across_connections_fails() -> None:
    # Attacker m makes node b accept a connection (b1) and dial out to m (b2), and answers b2's
    # HELLO with the proof b1 made for the same challenges: the names are in other roles.
    b1 = acceptor("b@h")
    b2 = initiator("b@h", creation=2, nonce_source=nonces(3))
    b2_hello = message(b2.initiate())
    welcome1 = message(
        sent(b1.receive_data(frame(hello(creation=2, challenge=b2_hello["challenge"]))))
    )
    reflected = hello(type="welcome", challenge=welcome1["challenge"], proof=welcome1["proof"])
    with pytest.raises(AuthenticationError, match="auth"):
        b2.receive_data(frame(reflected))


def test_initiator_label_proof_does_not_pass_as_acceptor_proof() -> None:
    i = initiator()
    my_hello = message(i.initiate())
    me = _Peer("a@h", 1, my_hello["challenge"])
    fake = _Peer("m@h", 9, b"\x07" * CHALLENGE_SIZE)
    transcript = _transcript(PROTOCOL_VERSION, "prod", me, fake)
    wrong_label = _proof(COOKIE, _INITIATOR_LABEL, transcript)
    with pytest.raises(AuthenticationError):
        i.receive_data(frame(hello(type="welcome", proof=wrong_label)))
    i = initiator()
    my_hello = message(i.initiate())
    right = _proof(COOKIE, _ACCEPTOR_LABEL, transcript)
    assert i.receive_data(frame(hello(type="welcome", proof=right)))[1:] == [
        Established("m@h", 9, PROTOCOL_VERSION)
    ]


def test_proof_binds_the_creation() -> None:
    # A WELCOME replayed with another creation (a restarted node's) no longer verifies.
    i, a = initiator(), acceptor()
    welcome = message(sent(a.receive_data(i.initiate())))
    welcome["creation"] += 1
    with pytest.raises(AuthenticationError):
        i.receive_data(frame(welcome))


OUT_OF_ORDER = {
    "proof before hello": ("acceptor", [{"type": "proof", "proof": b"\x00" * 32}]),
    "welcome to acceptor": ("acceptor", [hello(type="welcome")]),
    "two hellos": ("acceptor", [hello(), hello()]),
    "hello to initiator": ("initiator", [hello()]),
    "proof to initiator": ("initiator", [{"type": "proof", "proof": b"\x00" * 32}]),
    "unknown type": ("acceptor", [{"type": "bonjour"}]),
    "no type": ("acceptor", [{"version": 1}]),
    "unhashable type": ("acceptor", [{"type": [1]}]),
}


@pytest.mark.parametrize(("role", "messages"), OUT_OF_ORDER.values(), ids=OUT_OF_ORDER.keys())
def test_out_of_order_messages(role: str, messages: list[dict[str, Any]]) -> None:
    hs = acceptor() if role == "acceptor" else initiator()
    if role == "initiator":
        hs.initiate()
    with pytest.raises(ProtocolError) as info:
        for m in messages:
            hs.receive_data(frame(m))
    assert info.value.kind == "handshake"
    assert hs.state is HandshakeState.FAILED


MALFORMED = {
    "not msgpack": (encode_frame(Channel.CONTROL, b"\xc1"), "bad_msgpack"),
    "not a map": (frame([1, 2]), "handshake"),  # type: ignore[arg-type]
    "user frame": (encode_frame(Channel.USER, msgpack.packb(hello())), "unknown_channel"),
    "oversized": (encode_frame(Channel.CONTROL, b"\x00" * HANDSHAKE_MAX_FRAME_SIZE), "oversized"),
    "empty frame": (b"\x00\x00\x00\x00", "malformed"),
    "short challenge": (frame(hello(challenge=b"\x01")), "handshake"),
    "challenge as str": (frame(hello(challenge="x" * 32)), "handshake"),
    "missing name": (frame({k: v for k, v in hello().items() if k != "name"}), "handshake"),
    "empty name": (frame(hello(name="")), "handshake"),
    "long name": (frame(hello(name="n" * 256)), "handshake"),
    "bool creation": (frame(hello(creation=True)), "handshake"),
    "negative creation": (frame(hello(creation=-1)), "handshake"),
    "huge creation": (frame(hello(creation=2**32)), "handshake"),
    "our own name": (frame(hello(name="b@h")), "handshake"),
    "missing version": (frame({k: v for k, v in hello().items() if k != "version"}), "version"),
    "missing cluster": (frame({k: v for k, v in hello().items() if k != "cluster"}), "handshake"),
}


@pytest.mark.parametrize(("data", "kind"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_hello(data: bytes, kind: str) -> None:
    a = acceptor()
    with pytest.raises(ProtocolError) as info:
        a.receive_data(data)
    assert info.value.kind == kind
    assert a.rejection is not None
    assert message(a.rejection)["kind"] == kind


def test_bad_proof_field_in_welcome() -> None:
    for proof in (None, "x" * 32, b"\x00" * 31):
        i = initiator()
        i.initiate()
        fields = hello(type="welcome") | ({} if proof is None else {"proof": proof})
        with pytest.raises(ProtocolError):
            i.receive_data(frame(fields))


def test_expected_peer() -> None:
    i, a = initiator(expected_peer="c@h"), acceptor()
    welcome = a.receive_data(i.initiate())
    with pytest.raises(ProtocolError, match="dialled 'c@h', met 'b@h'"):
        i.receive_data(sent(welcome))
    i, a = initiator(expected_peer="b@h"), acceptor()
    handshake(i, a)
    assert i.state is HandshakeState.ESTABLISHED


@pytest.mark.parametrize(
    ("kind", "error", "expected_kind"),
    [
        ("auth", AuthenticationError, "auth"),
        ("version", ProtocolError, "version"),
        ("busy", ProtocolError, "busy"),
        ("rate_limited", ProtocolError, "rate_limited"),
        ("no such kind", ProtocolError, "handshake"),
        (7, ProtocolError, "handshake"),
    ],
)
def test_rejection_from_the_peer(kind: Any, error: type[Exception], expected_kind: str) -> None:
    i = initiator()
    i.initiate()
    with pytest.raises(error) as info:
        i.receive_data(frame({"type": "reject", "kind": kind}))
    assert isinstance(info.value, ProtocolError)
    assert info.value.kind == expected_kind
    assert i.rejection is None


def test_a_rejection_carries_its_detail_cut_to_a_bound() -> None:
    i = initiator()
    i.initiate()
    with pytest.raises(ProtocolError) as info:
        i.receive_data(reject_frame("busy", "x" * 10_000))
    assert info.value.detail == "rejected by peer: " + "x" * MAX_DETAIL


def test_calls_out_of_turn_are_usage_errors() -> None:
    i, a = initiator(), acceptor()
    with pytest.raises(UsageError):
        a.initiate()
    with pytest.raises(UsageError):
        i.receive_data(b"")  # before initiate()
    handshake(i, a)
    with pytest.raises(UsageError):
        i.initiate()
    with pytest.raises(UsageError):
        i.receive_data(b"more")
    with pytest.raises(UsageError):
        a.receive_data(b"more")
    failed = acceptor()
    with pytest.raises(ProtocolError):
        failed.receive_data(b"\x00\x00\x00\x00")
    with pytest.raises(UsageError):
        failed.receive_data(b"")


@pytest.mark.parametrize(
    "kw",
    [
        {"node_name": ""},
        {"node_name": "n" * 256},
        {"cluster": ""},
        {"cookie": b""},
        {"cookie": "text"},
        {"creation": -1},
        {"creation": 2**32},
        {"creation": True},
    ],
    ids=repr,
)
def test_constructor_validates(kw: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        initiator(**kw)


def test_role_and_nonce_source_are_validated() -> None:
    with pytest.raises(UsageError):
        Handshake(
            "server",  # type: ignore[arg-type]
            node_name="a",
            cluster="c",
            cookie=b"k",
            creation=0,
            nonce_source=nonces(0),
        )
    with pytest.raises(UsageError, match="nonce_source"):
        initiator(nonce_source=lambda n: b"short").initiate()


def test_challenges_come_from_the_nonce_source() -> None:
    calls: list[int] = []

    def source(n: int) -> bytes:
        calls.append(n)
        return bytes([len(calls)]) * n

    i, a = initiator(nonce_source=source), acceptor(nonce_source=source)
    handshake(i, a)
    assert calls == [CHALLENGE_SIZE, CHALLENGE_SIZE]


def test_repr_names_role_and_state() -> None:
    assert repr(initiator()) == "<Handshake initiator 'a@h' idle>"


def test_greetings_carry_each_sides_max_frame_size() -> None:
    i, a = initiator(max_frame_size=1000), acceptor(max_frame_size=2000)
    assert message(i.initiate())["max_frame"] == 1000
    i, a = initiator(max_frame_size=1000), acceptor(max_frame_size=2000)
    handshake(i, a)
    assert i.peer == Established("b@h", 2, PROTOCOL_VERSION, 2000)
    assert a.peer == Established("a@h", 1, PROTOCOL_VERSION, 1000)
    # a side that does not say leaves the limit unknown
    i, a = initiator(), acceptor(max_frame_size=2000)
    handshake(i, a)
    assert a.peer is not None and a.peer.peer_max_frame_size is None


@pytest.mark.parametrize("bad", [0, -1, 2**32, "big", 1.5])
def test_an_impossible_max_frame_is_a_handshake_error(bad: Any) -> None:
    a = acceptor()
    with pytest.raises(ProtocolError) as info:
        a.receive_data(frame(hello(max_frame=bad)))
    assert info.value.kind == "handshake"
