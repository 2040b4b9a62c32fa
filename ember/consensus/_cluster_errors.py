"""Errors of the :class:`~ember.consensus.Cluster` API, grouped by what the caller can do.

``NoLeader`` and ``NotLeader`` mean the write was not taken: retry (the second names where).
``OutcomeUnknown`` and ``WriteTimeout`` mean it may or may not have been applied: retry with the
same ``request_id``, which client sessions make exactly-once. ``CommandFailed`` is the state
machine's own verdict (its handler raised), the same on every member. ``CommandTooLarge``,
``GroupExists`` blame the caller (they are also :class:`~ember.UsageError`); ``UnknownGroup``
and ``NodeUnreachable`` say what is not there; the timeouts are also :class:`TimeoutError`.

Every error here survives the trip between nodes with its type and fields (``__reduce__``
gives the constructor's arguments, all plain msgpack values).
"""

from __future__ import annotations

from typing import Any

from .._errors import EmberError, UsageError

__all__ = [
    "ChangePending",
    "ClusterError",
    "CommandFailed",
    "CommandTooLarge",
    "GroupExists",
    "NoLeader",
    "NodeUnreachable",
    "NotLeader",
    "OutcomeUnknown",
    "ReadTimeout",
    "RequestTimeout",
    "UnknownGroup",
    "WriteTimeout",
]


class ClusterError(EmberError):
    """Root of the errors a :class:`~ember.consensus.Cluster` call raises."""


class NoLeader(ClusterError):
    """No leader is known (an election is under way, or a quorum is lost), or the member asked
    is stopped; nothing was written."""


class NotLeader(ClusterError):
    """The member asked is not the leader; nothing was written. ``leader_hint`` is the member it
    believes leads (None if unknown)."""

    def __init__(self, leader_hint: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader_hint})")
        self.leader_hint = leader_hint

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.leader_hint,))


class ChangePending(ClusterError):
    """The leader refused a membership change because another one (or a leadership transfer)
    is still under way; ``reason`` is the core's label (``"conf_change_pending"``,
    ``"transferring"``, ``"uncommitted_limit"``). Nothing was changed: retry shortly."""

    def __init__(self, op: str, node: str, reason: str) -> None:
        super().__init__(f"{op} {node} refused for now: {reason}")
        self.op = op
        self.node = node
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.op, self.node, self.reason))


class NodeUnreachable(ClusterError):
    """The node a request must go to cannot be reached: no address is known for it (an
    unknown name), or its connection is down, or it went down before answering. ``node`` names
    it. Retry once it is up, or check the name."""

    def __init__(self, node: str, detail: str = "") -> None:
        text = f"node {node} is unreachable"
        super().__init__(f"{text}: {detail}" if detail else text)
        self.node = node
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.node, self.detail))


class UnknownGroup(ClusterError):
    """None of the nodes asked holds a member of the group ``group`` (it was never started, or
    every member asked was removed); ``nodes`` are the nodes that said so."""

    def __init__(self, group: str, nodes: list[str] | tuple[str, ...]) -> None:
        super().__init__(f"no group {group!r} on {', '.join(nodes) or 'any node asked'}")
        self.group = group
        self.nodes = list(nodes)

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.group, self.nodes))


class GroupExists(ClusterError, UsageError):
    """``Cluster.start`` named a group that exists on ``node`` with another state machine or
    configuration (``detail`` says which); nothing was changed. Use :meth:`Cluster.connect` for
    the existing group, or another name."""

    def __init__(self, group: str, node: str, detail: str) -> None:
        super().__init__(f"group {group!r} exists on {node} with {detail}")
        self.group = group
        self.node = node
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.group, self.node, self.detail))


class CommandTooLarge(ClusterError, UsageError):
    """A write's command is ``size`` bytes encoded, over ``limit`` (``what`` names the limit:
    the group's ``ClusterConfig.max_command_bytes``, or the transport's ``max_frame_size``);
    nothing was sent. Split it, or raise the limit."""

    def __init__(
        self, size: int, limit: int, what: str = "ClusterConfig.max_command_bytes"
    ) -> None:
        super().__init__(
            f"a command of {size:,} bytes (encoded) exceeds {what} ({limit:,} bytes); "
            "nothing was written"
        )
        self.size = size
        self.limit = limit
        self.what = what

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.size, self.limit, self.what))


class OutcomeUnknown(ClusterError):
    """The leader was lost while the write was in flight: it may or may not have been applied.
    Retrying with the same ``request_id`` is safe (it applies at most once)."""

    def __init__(self, request_id: str | None, detail: str = "") -> None:
        text = f"outcome of write {request_id!r} unknown"
        super().__init__(f"{text}: {detail}" if detail else text)
        self.request_id = request_id
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.request_id, self.detail))


class WriteTimeout(OutcomeUnknown, TimeoutError):
    """The write was not acknowledged in time; like :class:`OutcomeUnknown`, it may still apply.
    Retry with the same ``request_id``."""


class ReadTimeout(ClusterError, TimeoutError):
    """A read could not be served in time (no leader confirmed the read index: an election, no
    quorum, or the member asked cannot be reached). Reads are safe to retry."""


class RequestTimeout(ClusterError, TimeoutError):
    """A request other than a write or a read (status, a membership change, starting or
    stopping members) was not answered in time; it may still take effect."""


class CommandFailed(ClusterError):
    """The state machine's handler raised while applying the command (deterministically, on
    every member); ``kind`` is the exception's qualified type name. The state is unchanged
    unless the handler changed it before raising."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.kind, self.message))
