"""The connection handshake: mutual authentication of two nodes over a shared cookie.

Three messages, each a msgpack map in a frame on the CONTROL channel::

    initiator                                                         acceptor
      HELLO    version, cluster, name, creation, challenge_i, max_frame  ->
           <-  WELCOME  version, cluster, name, creation, challenge_a, max_frame, proof_a
      PROOF    proof_i                                                    ->

``max_frame`` is the sender's ``max_frame_size``: each side then refuses to send a frame the
other would refuse to receive, so a too-large message fails at its sender with
``FrameTooLarge`` rather than cutting the connection off. It is not in the transcript: a
tamperer who changed it could only make a side refuse large frames, far less than dropping
the connection, which it can always do.

``proof_a`` is HMAC-SHA256(cookie, "acceptor" label + transcript) and ``proof_i`` the same with the
"initiator" label, where the transcript is both nodes' version, cluster, names, creations and
challenges. The cookie never crosses the wire. Each proof answers the other side's fresh challenge,
so it cannot be replayed; it names its direction, so a proof cannot be reflected back to the node
that made it; it covers both names and creations, so it cannot be spliced into another connection.
The initiator proves itself only after the acceptor has, so it is never an oracle for a stranger.

The initiator is established once it has checked ``proof_a`` and sent ``proof_i``, and may send
traffic right behind it; the acceptor is established once it has checked ``proof_i``. Either side
that finds the peer at fault raises, and leaves in :attr:`Handshake.rejection` a REJECT message
(``{"type": "reject", "kind": ..., "version": ..., "detail": ...}``) saying why, to send before
closing; so an initiator whose proof the acceptor refuses gets that REJECT as the first CONTROL
frame after the handshake, or just a closed connection. ``detail`` is written for both sides (a
cluster mismatch names both clusters), and the side that receives it raises the same kind with
that detail. The shell also sends a REJECT of its own (:func:`reject_frame`) to a connection it
refuses on arrival (``"busy"``, ``"rate_limited"``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, NoReturn

import msgpack  # type: ignore[import-untyped]

from .._errors import UsageError
from ._errors import AuthenticationError, ProtocolError
from ._frame import MAX_FRAME_SIZE, Channel, FrameDecoder, encode_frame

__all__ = [
    "CHALLENGE_SIZE",
    "HANDSHAKE_MAX_FRAME_SIZE",
    "MAX_DETAIL",
    "PROTOCOL_VERSION",
    "TRANSIENT_KINDS",
    "Established",
    "Event",
    "Handshake",
    "HandshakeState",
    "SendBytes",
    "reject_frame",
    "rejection_error",
]

PROTOCOL_VERSION = 3
"""The wire protocol version this code speaks; peers must speak the same. 2: a USER-channel
message carries the target's serial and creation instead of a pid ext value. 3: greetings
carry ``max_frame``; a failed call's reply carries the error's type, arguments and traceback."""
CHALLENGE_SIZE = 32
"""Bytes in each side's random challenge."""
HANDSHAKE_MAX_FRAME_SIZE = 4096
"""Limit on a handshake frame's declared length: the handshake messages are small."""

_MAX_NAME_BYTES = 255
_MAX_CREATION = 0xFFFF_FFFF
_ACCEPTOR_LABEL = b"ember-handshake-v1 acceptor proof\x00"
_INITIATOR_LABEL = b"ember-handshake-v1 initiator proof\x00"
# Reasons a REJECT may carry; anything else from a peer is reported as "handshake".
_REJECT_KINDS = frozenset(
    {
        "auth",
        "bad_msgpack",
        "busy",
        "cluster",
        "handshake",
        "malformed",
        "oversized",
        "rate_limited",
        "unknown_channel",
        "version",
    }
)
TRANSIENT_KINDS = frozenset({"busy", "rate_limited"})
"""REJECT kinds that refuse a connection for now, not for what the peer is: retrying later
may work (the acceptor had too many handshakes in progress, or too many from our address)."""
MAX_DETAIL = 400
"""Longest ``detail`` a REJECT carries (longer ones are cut, sending and receiving)."""


def reject_frame(kind: str, detail: str) -> bytes:
    """A REJECT message telling the peer why it is refused (``kind``, with ``detail``)."""
    return _message(
        {"type": "reject", "kind": kind, "version": PROTOCOL_VERSION, "detail": detail[:MAX_DETAIL]}
    )


def rejection_error(msg: dict[str, Any]) -> ProtocolError:
    """The error a REJECT message from the peer stands for: the kind it names (``"handshake"``
    if unknown) and its detail."""
    kind = msg.get("kind")
    if not isinstance(kind, str) or kind not in _REJECT_KINDS:
        kind = "handshake"
    detail = msg.get("detail")
    text = "rejected by peer"
    if isinstance(detail, str) and detail:
        text = f"rejected by peer: {detail[:MAX_DETAIL]}"
    if kind in ("auth", "cluster"):
        return AuthenticationError(kind, text)
    return ProtocolError(kind, text)


@dataclass(frozen=True, slots=True)
class SendBytes:
    """Send ``data`` to the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Established:
    """The peer is authenticated: the connection may carry traffic."""

    peer_name: str
    peer_creation: int
    peer_version: int
    peer_max_frame_size: int | None = None
    """The largest frame the peer accepts, if its greeting said."""


Event = SendBytes | Established
"""What :meth:`Handshake.receive_data` returns."""


class HandshakeState(StrEnum):
    """Where a :class:`Handshake` is."""

    IDLE = "idle"
    """An initiator that has not called :meth:`Handshake.initiate` yet."""
    AWAIT_HELLO = "await_hello"
    """An acceptor waiting for the initiator's HELLO."""
    AWAIT_WELCOME = "await_welcome"
    """An initiator waiting for the acceptor's WELCOME."""
    AWAIT_PROOF = "await_proof"
    """An acceptor waiting for the initiator's PROOF."""
    ESTABLISHED = "established"
    """Both sides proved themselves (as far as this side can know)."""
    FAILED = "failed"
    """The handshake failed; the connection must be closed."""


_S = HandshakeState


@dataclass(frozen=True, slots=True)
class _Peer:
    name: str
    creation: int
    challenge: bytes


def _transcript(version: int, cluster: str, initiator: _Peer, acceptor: _Peer) -> bytes:
    # msgpack prefixes every field with its type and length: different fields, different bytes.
    fields = [version, cluster]
    for peer in (initiator, acceptor):
        fields += [peer.name, peer.creation, peer.challenge]
    data: bytes = msgpack.packb(fields, use_bin_type=True)
    return data


def _proof(cookie: bytes, label: bytes, transcript: bytes) -> bytes:
    return hmac.new(cookie, label + transcript, hashlib.sha256).digest()


def _message(fields: dict[str, Any]) -> bytes:
    return encode_frame(Channel.CONTROL, msgpack.packb(fields, use_bin_type=True))


def _field(msg: dict[str, Any], key: str, kind: type) -> Any:
    value = msg.get(key)
    if value.__class__ is not kind:
        raise ProtocolError(
            "handshake", f"{msg.get('type')} field {key!r} is missing or not {kind.__name__}"
        )
    return value


class Handshake:
    """One side of the handshake of one connection: bytes in, events out, no I/O.

    ``role`` is ``"initiator"`` for the side that opened the connection, ``"acceptor"`` for the
    other. ``cookie`` is the cluster's shared secret; ``creation`` this node's incarnation;
    ``nonce_source(n)`` returns ``n`` random bytes (``os.urandom`` in production). An initiator that
    knows whom it dialled passes ``expected_peer`` to refuse anyone else.

    Raises :class:`ProtocolError` or :class:`AuthenticationError` when the peer is at fault, and
    :class:`~ember.UsageError` when called out of turn.
    """

    def __init__(
        self,
        role: Literal["initiator", "acceptor"],
        *,
        node_name: str,
        cluster: str,
        cookie: bytes,
        creation: int,
        nonce_source: Callable[[int], bytes],
        expected_peer: str | None = None,
        max_frame_size: int | None = None,
    ) -> None:
        if role not in ("initiator", "acceptor"):
            raise UsageError(f"role must be 'initiator' or 'acceptor', not {role!r}")
        for what, text in (("node_name", node_name), ("cluster", cluster)):
            if not isinstance(text, str) or not 0 < len(text.encode()) <= _MAX_NAME_BYTES:
                raise UsageError(f"{what} must be a str of 1..{_MAX_NAME_BYTES} UTF-8 bytes")
        if not isinstance(cookie, bytes) or not cookie:
            raise UsageError("cookie must be non-empty bytes")
        if creation.__class__ is not int or not 0 <= creation <= _MAX_CREATION:
            raise UsageError(f"creation must be an int in 0..{_MAX_CREATION}, not {creation!r}")
        self.role = role
        self.node_name = node_name
        self.cluster = cluster
        self.creation = creation
        self.expected_peer = expected_peer
        self.max_frame_size = max_frame_size
        """This side's ``max_frame_size``, told to the peer (None: not told)."""
        self._cookie = cookie
        self._nonce_source = nonce_source
        self._state = _S.IDLE if role == "initiator" else _S.AWAIT_HELLO
        self._frames = FrameDecoder(HANDSHAKE_MAX_FRAME_SIZE, (Channel.CONTROL,))
        self._challenge = b""  # ours
        self._transcript = b""  # what both proofs cover, once both challenges are known
        self._peer: Established | None = None  # who the peer claims to be, until it proves it
        self._peer_rejected = False
        self.trailing_data = b""
        """Bytes the peer sent after its last handshake message: the connection's first bytes."""
        self.rejection: bytes | None = None
        """After a failure the peer caused: a REJECT frame to send it, best effort, then close."""

    @property
    def state(self) -> HandshakeState:
        """Where the handshake is."""
        return self._state

    @property
    def peer(self) -> Established | None:
        """Who the peer is, once established; else ``None``."""
        return self._peer if self._state is _S.ESTABLISHED else None

    @property
    def claimed_peer(self) -> str | None:
        """The name the peer's greeting gave, before it has proved it; else ``None``."""
        return self._peer.peer_name if self._peer is not None else None

    def initiate(self) -> bytes:
        """Start the handshake (initiator only): return the HELLO frame to send."""
        if self._state is not _S.IDLE:
            raise UsageError(f"initiate() is for an initiator that has not started, not {self}")
        self._challenge = self._new_challenge()
        self._state = _S.AWAIT_WELCOME
        return _message(
            self._greeting(
                {
                    "type": "hello",
                    "version": PROTOCOL_VERSION,
                    "cluster": self.cluster,
                    "name": self.node_name,
                    "creation": self.creation,
                    "challenge": self._challenge,
                }
            )
        )

    def receive_data(self, data: bytes) -> list[Event]:
        """Take bytes from the peer; return what to do, in order.

        Stops at the message that completes the handshake; what the peer sent after it is left in
        :attr:`trailing_data`.
        """
        if self._state in (_S.IDLE, _S.ESTABLISHED, _S.FAILED):
            raise UsageError(f"receive_data() is not allowed in state {self._state}")
        events: list[Event] = []
        try:
            self._frames.add_data(data)
            while self.state is not _S.ESTABLISHED:
                frame = self._frames.next_frame()
                if frame is None:
                    break
                events += self._receive_message(frame.payload)
        except ProtocolError as exc:
            self._state = _S.FAILED
            if not self._peer_rejected:
                self.rejection = reject_frame(exc.kind, exc.detail)
            raise
        if self.state is _S.ESTABLISHED:
            self.trailing_data = self._frames.take_buffered()
        return events

    def __repr__(self) -> str:
        return f"<Handshake {self.role} {self.node_name!r} {self._state}>"

    def _receive_message(self, payload: bytes) -> list[Event]:
        try:
            msg = msgpack.unpackb(payload, raw=False)
        except Exception as exc:
            raise ProtocolError("bad_msgpack", f"handshake message: {exc}") from exc
        if msg.__class__ is not dict:
            raise ProtocolError("handshake", "a handshake message must be a map")
        kind = msg.get("type")
        if kind == "reject":
            self._rejected(msg)
        move = _TRANSITIONS.get((self._state, kind)) if isinstance(kind, str) else None
        if move is None:
            raise ProtocolError("handshake", f"unexpected {kind!r} message in state {self._state}")
        handler, next_state = move
        events = handler(self, msg)
        self._state = next_state
        return events

    def _on_hello(self, msg: dict[str, Any]) -> list[Event]:
        """Acceptor: answer the initiator's challenge and pose ours."""
        peer = self._check_greeting(msg)
        me = _Peer(self.node_name, self.creation, self._new_challenge())
        self._challenge = me.challenge
        self._transcript = _transcript(PROTOCOL_VERSION, self.cluster, peer, me)
        welcome = {
            "type": "welcome",
            "version": PROTOCOL_VERSION,
            "cluster": self.cluster,
            "name": self.node_name,
            "creation": self.creation,
            "challenge": me.challenge,
            "proof": _proof(self._cookie, _ACCEPTOR_LABEL, self._transcript),
        }
        return [SendBytes(_message(self._greeting(welcome)))]

    def _greeting(self, fields: dict[str, Any]) -> dict[str, Any]:
        if self.max_frame_size is not None:
            fields["max_frame"] = self.max_frame_size
        return fields

    def _on_welcome(self, msg: dict[str, Any]) -> list[Event]:
        """Initiator: check the acceptor's proof, then answer its challenge."""
        peer = self._check_greeting(msg)
        me = _Peer(self.node_name, self.creation, self._challenge)
        self._transcript = _transcript(PROTOCOL_VERSION, self.cluster, me, peer)
        self._check_proof(msg, _ACCEPTOR_LABEL)
        proof = _proof(self._cookie, _INITIATOR_LABEL, self._transcript)
        assert self._peer is not None
        return [SendBytes(_message({"type": "proof", "proof": proof})), self._peer]

    def _on_proof(self, msg: dict[str, Any]) -> list[Event]:
        """Acceptor: check the initiator's proof."""
        self._check_proof(msg, _INITIATOR_LABEL)
        assert self._peer is not None
        return [self._peer]

    def _check_greeting(self, msg: dict[str, Any]) -> _Peer:
        """Validate a HELLO or WELCOME and note who the peer claims to be."""
        # The version comes first: another version's messages may differ in everything else.
        version = msg.get("version")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(
                "version", f"peer speaks protocol version {version!r}, we {PROTOCOL_VERSION}"
            )
        cluster = _field(msg, "cluster", str)
        if cluster != self.cluster:
            name = msg.get("name")
            who = repr(name[:_MAX_NAME_BYTES]) if isinstance(name, str) else "the peer"
            raise AuthenticationError(
                "cluster",
                f"node {who} is in cluster {cluster[:_MAX_NAME_BYTES]!r}, node "
                f"{self.node_name!r} in cluster {self.cluster!r}",
            )
        peer = _Peer(
            _field(msg, "name", str), _field(msg, "creation", int), _field(msg, "challenge", bytes)
        )
        if not 0 < len(peer.name.encode()) <= _MAX_NAME_BYTES:
            raise ProtocolError("handshake", "peer name is empty or too long")
        if not 0 <= peer.creation <= _MAX_CREATION:
            raise ProtocolError("handshake", f"peer creation {peer.creation} is out of range")
        if len(peer.challenge) != CHALLENGE_SIZE:
            raise ProtocolError("handshake", f"challenge is not {CHALLENGE_SIZE} bytes")
        if peer.name == self.node_name:
            raise ProtocolError("handshake", f"peer claims our own name {peer.name!r}")
        if self.expected_peer is not None and peer.name != self.expected_peer:
            raise ProtocolError("handshake", f"dialled {self.expected_peer!r}, met {peer.name!r}")
        max_frame = msg.get("max_frame")
        if max_frame is not None and (
            max_frame.__class__ is not int or not 1 <= max_frame <= MAX_FRAME_SIZE
        ):
            raise ProtocolError("handshake", f"max_frame {max_frame!r} is out of range")
        self._peer = Established(peer.name, peer.creation, PROTOCOL_VERSION, max_frame)
        return peer

    def _check_proof(self, msg: dict[str, Any], label: bytes) -> None:
        proof = _field(msg, "proof", bytes)
        if not hmac.compare_digest(proof, _proof(self._cookie, label, self._transcript)):
            peer = self._peer.peer_name if self._peer is not None else "the peer"
            raise AuthenticationError(
                "auth",
                f"node {self.node_name!r} cannot verify the proof of node {peer!r}: "
                "their cookies differ",
            )

    def _rejected(self, msg: dict[str, Any]) -> NoReturn:
        self._peer_rejected = True
        raise rejection_error(msg)

    def _new_challenge(self) -> bytes:
        challenge = self._nonce_source(CHALLENGE_SIZE)
        if not isinstance(challenge, bytes) or len(challenge) != CHALLENGE_SIZE:
            raise UsageError(f"nonce_source({CHALLENGE_SIZE}) must return {CHALLENGE_SIZE} bytes")
        return challenge


_Handler = Callable[[Handshake, dict[str, Any]], list[Event]]

# Every move the handshake can make: (state, message type received) -> (handler, next state).
# Any other message, in any state, is a protocol violation.
_TRANSITIONS: dict[tuple[HandshakeState, str], tuple[_Handler, HandshakeState]] = {
    (_S.AWAIT_HELLO, "hello"): (Handshake._on_hello, _S.AWAIT_PROOF),
    (_S.AWAIT_WELCOME, "welcome"): (Handshake._on_welcome, _S.ESTABLISHED),
    (_S.AWAIT_PROOF, "proof"): (Handshake._on_proof, _S.ESTABLISHED),
}
