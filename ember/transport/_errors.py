"""Errors of the transport layer, grouped by who is at fault.

:class:`ProtocolError` and :class:`AuthenticationError` blame the peer: what it sent broke the
wire protocol or failed authentication, and the connection must be closed.
:class:`UnsendableError` blames the local sender: the message cannot be encoded; nothing was sent.
:class:`UndecodableError` blames the configuration of the two nodes: the receiver cannot decode
what the sender could encode (a record type only the sender registered); nothing was delivered.
"""

from __future__ import annotations

from typing import Any

from .._errors import EmberError


class ProtocolError(EmberError):
    """The peer broke the wire protocol; the connection cannot continue.

    ``kind`` is a short, stable label for metrics and logs:

    - ``"oversized"``: a frame declares a length above the limit;
    - ``"malformed"``: a frame header is impossible (a zero length);
    - ``"unknown_channel"``: a frame names a channel this node does not accept;
    - ``"bad_msgpack"``: a payload is not valid msgpack, or holds an unknown or malformed ext value;
    - ``"handshake"``: a handshake message is out of order, malformed, or names an impossible peer;
    - ``"version"``: the peer speaks another protocol version.

    ``detail`` says what exactly was wrong, for humans.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.kind, self.detail))


class AuthenticationError(ProtocolError):
    """The peer failed authentication: ``kind`` is ``"auth"`` (bad proof) or ``"cluster"``."""

    def __init__(self, kind: str = "auth", detail: str = "") -> None:
        super().__init__(kind, detail)


class UnsendableError(EmberError, TypeError):
    """A message cannot be encoded for the wire; ``value_type`` is the type that could not be
    (its ``"module.QualName"`` when the error comes from another node)."""

    def __init__(self, value_type: type | str, reason: str) -> None:
        if isinstance(value_type, str):  # from another node, which names the type
            name = value_type
        elif value_type.__module__ == "builtins":
            name = value_type.__qualname__
        else:
            name = f"{value_type.__module__}.{value_type.__qualname__}"
        super().__init__(f"cannot send a value of type {name}: {reason}")
        self.value_type = value_type
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.value_type, self.reason))


class UndecodableError(EmberError, TypeError):
    """A node could not decode a message another node sent it, most often because the message
    holds a dataclass the sender registered (``Node.register_type``) and the receiver did not.
    Nothing was delivered. ``node`` is the node that could not decode it; ``detail`` says why.
    Register the type on every node, with the same ``code`` if one is given."""

    def __init__(self, node: str, detail: str) -> None:
        super().__init__(f"node {node} cannot decode the message: {detail}")
        self.node = node
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.node, self.detail))
