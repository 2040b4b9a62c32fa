"""The actor the names workload registers, and asks for a node's view of the names.

Node processes spawn it by reference (``ember.chaos._probe:Holder``).
"""

from __future__ import annotations

from typing import Any

from .. import actors

__all__ = ["Holder"]


class Holder(actors.Actor):
    """Holds names for the workload; ``("view", names, tier)`` answers this node's view: the
    pid (as text) registered under each name, or None."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("view", names, tier):
                node = actors.current()
                registry = node.service("names")  # type: ignore[attr-defined]
                views = [registry.whereis(n, tier) for n in names]
                return [None if pid is None else str(pid) for pid in views]
        return None
