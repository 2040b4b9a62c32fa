"""Process groups as module-level functions (``from ember.registry import pg``;
``pg.join("workers", ember.self())``), each acting on the node of the calling process (or the
one entered with ``async with Node(...)``): OTP's ``pg:join/2``... for the default scope,
``scope=`` for another. See :class:`~ember.registry.ProcessGroups` and ``docs/pg.md``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from .._errors import UsageError
from ..actors import Pid, Ref
from ..actors._api import current
from ._pg import ProcessGroups

__all__ = [
    "broadcast",
    "demonitor",
    "get_local_members",
    "get_members",
    "join",
    "leave",
    "monitor",
    "monitor_scope",
    "scope_service",
    "which_groups",
    "which_local_groups",
]


def scope_service() -> ProcessGroups:
    """The current node's process groups (``node.pg``)."""
    node = current()
    service = node.service("pg") if hasattr(node, "service") else None
    if service is None:
        raise UsageError(f"node {node.name} runs no pg")
    return service  # type: ignore[no-any-return]


def join(group: Any, pids: Pid | Iterable[Pid], scope: str | None = None) -> None:
    """Each pid joins ``group`` once more (see :meth:`ProcessGroups.join`)."""
    scope_service().join(group, pids, scope)


def leave(
    group: Any, pids: Pid | Iterable[Pid], scope: str | None = None
) -> Literal["ok", "not_joined"]:
    """Each pid leaves ``group`` once; ``"not_joined"`` if none was in it."""
    return scope_service().leave(group, pids, scope)


def get_members(group: Any, scope: str | None = None) -> list[Pid]:
    """Every member of ``group`` this node knows of."""
    return scope_service().get_members(group, scope)


def get_local_members(group: Any, scope: str | None = None) -> list[Pid]:
    """The members of ``group`` on this node."""
    return scope_service().get_local_members(group, scope)


def which_groups(scope: str | None = None) -> list[Any]:
    """Every group with a member known here."""
    return scope_service().which_groups(scope)


def which_local_groups(scope: str | None = None) -> list[Any]:
    """The groups with a member on this node."""
    return scope_service().which_local_groups(scope)


def monitor_scope(scope: str | None = None) -> tuple[Ref, dict[Any, list[Pid]]]:
    """The scope's groups now, then a ``GroupEvent`` per join or leave."""
    return scope_service().monitor_scope(scope)


def monitor(group: Any, scope: str | None = None) -> tuple[Ref, list[Pid]]:
    """The members of ``group`` now, then a ``GroupEvent`` per join or leave."""
    return scope_service().monitor(group, scope)


def demonitor(ref: Ref, scope: str | None = None) -> bool:
    """End a pg monitor (and drop its pending events)."""
    return scope_service().demonitor(ref, scope)


def broadcast(
    group: Any, message: Any, scope: str | None = None, *, local_only: bool = False
) -> int:
    """Send ``message`` once to every member of ``group``; how many there were."""
    return scope_service().broadcast(group, message, scope, local_only=local_only)
