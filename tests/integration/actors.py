"""Actors that node processes in the integration tests import by reference."""

from __future__ import annotations

import time
from typing import Any

import ember


class Echo(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("relay", pid, m):
                return await ember.call(pid, m)
            case "node":
                return self.node.name
        return msg


class FailsToStart(ember.Actor):
    async def started(self) -> None:
        raise ValueError("no database here")


class Big(ember.Actor):
    """Answers ``("bytes", n)`` with ``n`` bytes."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("bytes", n):
                return b"x" * n
        return msg


class SupervisorClient(ember.Actor):
    """Runs supervisor verbs on a supervisor of another node, for a third party."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("which", sup):
                return await ember.Supervisor.which_children(sup)
            case ("count", sup):
                return await ember.Supervisor.count_children(sup)
            case ("start", sup, spec):
                return await ember.Supervisor.start_child(sup, spec)
            case ("terminate", sup, child_id):
                return await ember.Supervisor.terminate_child(sup, child_id)
        return msg


def _block(seconds: float) -> None:
    time.sleep(seconds)  # the mistake under test: a blocking call on the event loop


class Blocker(ember.Actor):
    """``("block", seconds)`` blocks its node's event loop that long."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("block", seconds):
                _block(seconds)
        return msg


class NameHolder(ember.Actor):
    """Holds registry names in the registry tests: answers ``"node"`` with its node's name,
    ``("join", group)`` by joining a pg group itself, anything else with ``("held", msg)``."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case "node":
                return self.node.name
            case ("join", group):
                ember.current().pg.join(group, ember.self())  # type: ignore[attr-defined]
                return "joined"
        return ("held", msg)


class NameCaller(ember.Actor):
    """Calls and sends to a registry name from its own node: ``("call", name, tier, msg)``."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("call", name, tier, m):
                ember.send(ember.Name(name, tier=tier), ("sent", m))
                return await ember.call(ember.Name(name, tier=tier), m, timeout=10.0)
        return None
