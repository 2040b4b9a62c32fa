"""Errors of the transport layer, grouped by who is at fault.

:class:`ProtocolError` and :class:`AuthenticationError` blame the peer: what it sent broke the
wire protocol or failed authentication, and the connection must be closed.
:class:`UnsendableError` blames the local sender: the message cannot be encoded; nothing was sent.
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
    """A message cannot be encoded for the wire; ``value_type`` is the type that could not be."""

    def __init__(self, value_type: type, reason: str) -> None:
        name = f"{value_type.__module__}.{value_type.__qualname__}"
        if value_type.__module__ == "builtins":
            name = value_type.__qualname__
        super().__init__(f"cannot send a value of type {name}: {reason}")
        self.value_type = value_type
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.value_type, self.reason))
