"""Actors the cluster demo spawns on other nodes (they import this module by name)."""

from __future__ import annotations

from typing import Any

import ember


class Counter(ember.Actor):
    """Counts what it is sent; ``("relay", pid, k)`` passes ``("add", k)`` on to another node."""

    def __init__(self, start: int = 0) -> None:
        self.n = start

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("add", k):
                self.n += k
            case ("relay", pid, k):
                ember.send(pid, ("add", k))
            case "get":
                return (self.node.name, self.n)
            case ("join", group):  # pg members are local processes: each joins on its node
                ember.current().pg.join(group, ember.self())  # type: ignore[attr-defined]
        return None
