"""Errors of the Raft core, grouped by who is at fault.

:class:`ProposalDropped` is the core refusing work it cannot take now (not the leader, a transfer
in progress, too many uncommitted bytes, a membership change already pending); the caller may
retry elsewhere or later. :class:`MessageDecodeError` blames the peer: its bytes are not a Raft
message. :class:`RaftUsageError` blames the caller (a bad argument, a misuse of ``ready``).
"""

from __future__ import annotations

from typing import Any

from .._errors import EmberError, UsageError

__all__ = ["MessageDecodeError", "ProposalDropped", "RaftUsageError"]


class ProposalDropped(EmberError):
    """The core did not accept a proposal; ``reason`` is a short, stable label:
    ``"not_leader"``, ``"transferring"``, ``"uncommitted_limit"``, ``"conf_change_pending"``,
    ``"removed"`` or ``"invalid_conf_change"``. ``leader`` is the known leader, if any, so the
    shell can forward."""

    def __init__(self, reason: str, leader: str | None = None, detail: str = "") -> None:
        text = f"proposal dropped: {reason}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)
        self.reason = reason
        self.leader = leader
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.reason, self.leader, self.detail))


class MessageDecodeError(EmberError, ValueError):
    """Bytes that claim to be a Raft message are not one (the peer is at fault)."""


class RaftUsageError(UsageError):
    """The core was driven wrongly: a bad argument, or ``ready``/``advance`` out of order."""
