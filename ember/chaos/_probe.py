"""The actor the names and pg workloads use on every node: it holds names, joins groups, and
answers its node's view of both.

Node processes spawn it by reference (``ember.chaos._probe:Holder``).
"""

from __future__ import annotations

from typing import Any

from .. import actors

__all__ = ["Holder"]


def _service(name: str) -> Any:
    return actors.current().service(name)  # type: ignore[attr-defined]


class Holder(actors.Actor):
    """``("view", names, tier)``: the holder (as text) this node sees under each name.
    ``("pg", "join" | "leave", group)``: this process joins or leaves ``group`` once.
    ``("pg_view", groups, local)``: the members (as text, sorted) this node sees in each
    group, or only its local ones. ``("echo", value)``: ``("echo", node, value)``."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("view", names, tier):
                registry = _service("names")
                return [None if (p := registry.whereis(n, tier)) is None else str(p) for n in names]
            case ("pg", "join", group):
                _service("pg").join(group, actors.self())
                return "ok"
            case ("pg", "leave", group):
                return _service("pg").leave(group, actors.self())
            case ("echo", value):
                return ("echo", actors.current().name, value)
            case ("pg_view", groups, local):
                pg = _service("pg")
                get = pg.get_local_members if local else pg.get_members
                return [sorted(str(p) for p in get(g)) for g in groups]
        return None
