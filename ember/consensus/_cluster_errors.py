"""Errors of the :class:`~ember.consensus.Cluster` API, grouped by what the caller can do.

``NoLeader`` and ``NotLeader`` mean the write was not taken: retry (the second names where).
``OutcomeUnknown`` and ``WriteTimeout`` mean it may or may not have been applied: retry with the
same ``request_id``, which client sessions make exactly-once. ``CommandFailed`` is the state
machine's own verdict (its handler raised), the same on every member.
"""

from __future__ import annotations

from .._errors import EmberError

__all__ = [
    "ClusterError",
    "CommandFailed",
    "NoLeader",
    "NotLeader",
    "OutcomeUnknown",
    "ReadTimeout",
    "WriteTimeout",
]


class ClusterError(EmberError):
    """Root of the errors a :class:`~ember.consensus.Cluster` call raises."""


class NoLeader(ClusterError):
    """No leader is known (an election is under way, or a quorum is lost); nothing was written."""


class NotLeader(ClusterError):
    """The member asked is not the leader; nothing was written. ``leader_hint`` is the member it
    believes leads (None if unknown)."""

    def __init__(self, leader_hint: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader_hint})")
        self.leader_hint = leader_hint


class OutcomeUnknown(ClusterError):
    """The leader was lost while the write was in flight: it may or may not have been applied.
    Retrying with the same ``request_id`` is safe (it applies at most once)."""

    def __init__(self, request_id: str | None, detail: str = "") -> None:
        text = f"outcome of write {request_id!r} unknown"
        super().__init__(f"{text}: {detail}" if detail else text)
        self.request_id = request_id


class WriteTimeout(OutcomeUnknown, TimeoutError):
    """The write was not acknowledged in time; like :class:`OutcomeUnknown`, it may still apply.
    Retry with the same ``request_id``."""


class ReadTimeout(ClusterError, TimeoutError):
    """A read could not be served in time (no leader confirmed the read index)."""


class CommandFailed(ClusterError):
    """The state machine's handler raised while applying the command (deterministically, on
    every member); ``kind`` is the exception's qualified type name. The state is unchanged
    unless the handler changed it before raising."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
