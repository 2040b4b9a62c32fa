"""Module-level shortcuts for the registry, as ``ember.send`` is for the kernel: each acts on the
node of the calling process (or the one entered with ``async with Node(...)``)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from .._errors import UsageError
from ..actors import Pid, Ref
from ..actors._api import current
from ._name import Tier
from ._names import Names, Policy, Registration

__all__ = [
    "demonitor",
    "lookup",
    "monitor",
    "names",
    "register",
    "registered",
    "unregister",
    "wait_for",
    "whereis",
]


def names() -> Names:
    """The registry of the current node (``node.names``)."""
    node = current()
    service = node.service("names") if hasattr(node, "service") else None
    if service is None:
        raise UsageError(f"node {node.name} runs no registry")
    return service  # type: ignore[no-any-return]


async def register(
    name: Any,
    pid: Pid,
    tier: Tier = "local",
    *,
    meta: Any = None,
    on_conflict: Policy | None = None,
    timeout: float | None = None,  # noqa: ASYNC109
) -> int | None:
    """:meth:`Names.register` on the current node."""
    return await names().register(
        name, pid, tier, meta=meta, on_conflict=on_conflict, timeout=timeout
    )


async def unregister(name: Any, tier: Tier = "local", *, timeout: float | None = None) -> None:  # noqa: ASYNC109
    """:meth:`Names.unregister` on the current node."""
    await names().unregister(name, tier, timeout=timeout)


def whereis(name: Any, tier: Tier | None = None) -> Pid | None:
    """:meth:`Names.whereis` (cached) on the current node."""
    return names().whereis(name, tier)


def lookup(name: Any, tier: Tier | None = None) -> Registration | None:
    """:meth:`Names.lookup` on the current node."""
    return names().lookup(name, tier)


def registered(tier: Tier | None = None) -> list[Any]:
    """:meth:`Names.registered` on the current node."""
    return names().registered(tier)


def monitor(name: Any, tier: Tier | None = None) -> Ref:
    """:meth:`Names.monitor` for the calling process."""
    return names().monitor(name, tier)


def demonitor(ref: Ref) -> bool:
    """:meth:`Names.demonitor`."""
    return names().demonitor(ref)


def wait_for(
    name: Any, tier: Tier | None = None, *, timeout: float | None = None
) -> Awaitable[Registration]:
    """:meth:`Names.wait_for` on the current node."""
    return names().wait_for(name, tier, timeout=timeout)
