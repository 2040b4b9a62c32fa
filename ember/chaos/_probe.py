"""The actors the workloads use on every node: ``Holder`` holds names, joins groups, and
answers its node's view of both; ``TreeWorker`` is a child of the supervision tree the
supervisors workload starts on every node (:func:`tree_children`).

Node processes spawn them by reference (``ember.chaos._probe:Holder``...).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from .. import actors
from ..actors import ChildSpec, child

__all__ = [
    "INJECTED_CRASH",
    "SUPERVISOR_REF",
    "TREE",
    "TREE_INTENSITY",
    "TREE_PERIOD",
    "Holder",
    "InjectedCrash",
    "TreeWorker",
    "expected_tree",
    "tree_children",
]

TREE: Final = "ember.chaos.tree"
"""The local name of the supervisors workload's top supervisor on each node."""
SUPERVISOR_REF: Final = "ember.actors._supervisor:Supervisor"
_WORKER_REF: Final = "ember.chaos._probe:TreeWorker"
TREE_INTENSITY: Final = 1000
TREE_PERIOD: Final = 1.0
"""Restarts the tree's supervisors allow (per period, seconds): far more than the workload
causes, so a supervisor that gives up is a finding, not the workload's doing."""
INJECTED_CRASH: Final = "InjectedCrash"
"""What the node logs when the workload crashes a worker (the runner accepts those lines)."""


def _service(name: str) -> Any:
    return actors.current().service(name)  # type: ignore[attr-defined]


class Holder(actors.Actor):
    """``("view", names, tier)``: the holder (as text) this node sees under each name.
    ``("pg", "join" | "leave", group)``: this process joins or leaves ``group`` once.
    ``("pg_view", groups, local)``: the members (as text, sorted) this node sees in each
    group, or only its local ones. ``("echo", value)``: ``("echo", node, value)``.
    ``("sleep", seconds)``: ``"slept"`` once its node's timers say that much passed."""

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
            case ("sleep", seconds):  # on its node's timers (a skewed clock shows here)
                await asyncio.sleep(seconds)
                return "slept"
            case ("pg_view", groups, local):
                pg = _service("pg")
                get = pg.get_local_members if local else pg.get_members
                return [sorted(str(p) for p in get(g)) for g in groups]
        return None


class InjectedCrash(Exception):
    """The exception a :class:`TreeWorker` raises when told to crash."""


class TreeWorker(actors.Actor):
    """A child of the tree: ``("crash",)`` makes it raise :class:`InjectedCrash` (its
    supervisor restarts it); anything else is answered with its node's name."""

    async def receive(self, msg: Any) -> Any:
        if msg == ("crash",):
            raise InjectedCrash("crashed by the chaos supervisors workload")
        return actors.current().name


def _nested() -> list[ChildSpec]:
    return [child(_WORKER_REF, id=f"s{i}") for i in (1, 2, 3)]


def tree_children() -> list[ChildSpec]:
    """The top supervisor's children (one_for_one): two permanent workers, a nested
    rest_for_one supervisor of three, and a transient worker (an abnormal exit restarts it)."""
    nested = _nested()
    return [
        child(_WORKER_REF, id="w1"),
        child(_WORKER_REF, id="w2"),
        child(SUPERVISOR_REF, nested, "rest_for_one", TREE_INTENSITY, TREE_PERIOD, id="sub"),
        child(_WORKER_REF, id="w3", restart="transient"),
    ]


def expected_tree() -> dict[str, list[str]]:
    """The children a tree at full strength runs: ``{"": top ids, "sub": nested ids}``."""
    return {"": [str(c.id) for c in tree_children()], "sub": [str(c.id) for c in _nested()]}
