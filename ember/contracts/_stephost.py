"""Steps placed on another node: each node runs one :class:`StepHost` actor that spawns a
:class:`StepWorker` for every attempt a remote coordinator sends it (a remote spawn in one
message, answered by the worker's own report: the cost of a remote call), watches its workers,
and stops one when asked. A coordinator finds a node's host once, with a :class:`HostLocator`
spawned there, and monitors it: losing the host (its node) loses the attempts sent to it."""

from __future__ import annotations

from typing import Any

from ..actors import KILLED, NORMAL, Actor, Down, Pid, Ref
from ._values import Failure
from ._worker import StepWorker

__all__ = ["LOCATOR_REF", "HostLocator", "StepHost"]

LOCATOR_REF = "ember.contracts._stephost:HostLocator"


class StepHost(Actor):
    """Runs ``("run", coordinator, <StepWorker arguments>...)`` attempts for remote
    coordinators and handles ``("abort", coordinator, key, attempt)``. A worker that dies
    without reporting (killed from outside) is reported to its coordinator as failed."""

    def __init__(self) -> None:
        self.workers: dict[tuple[Pid, str, int], tuple[Pid, Ref]] = {}
        self.by_ref: dict[Ref, tuple[Pid, str, int]] = {}
        self.aborted: set[Ref] = set()

    def receive(self, msg: Any) -> Any:
        match msg:
            case ("run", Pid() as coordinator, *args):
                key, attempt = args[2], args[5]
                pid = self.node.spawn_nowait(StepWorker, coordinator, *args)
                ref = self.node.monitor(pid)
                self.workers[(coordinator, key, attempt)] = (pid, ref)
                self.by_ref[ref] = (coordinator, key, attempt)
            case ("abort", Pid() as coordinator, str(key), int(attempt)):
                found = self.workers.pop((coordinator, key, attempt), None)
                if found is not None:
                    pid, ref = found
                    self.aborted.add(ref)
                    self.node.exit(pid, "abort")
            case Down(ref=ref, reason=reason):
                who = self.by_ref.pop(ref, None)
                if who is None:
                    return
                self.workers.pop(who, None)
                if ref in self.aborted:
                    self.aborted.discard(ref)
                    return
                if reason not in (NORMAL, "abort"):
                    coordinator, key, attempt = who
                    failure = Failure("WorkerExit", repr(reason), node=self.node.name)
                    if reason == KILLED:
                        failure = Failure(
                            "WorkerExit", "the worker was killed", node=self.node.name
                        )
                    self.node.send(
                        coordinator, ("fail", key, attempt, failure.as_list(), self.node.name)
                    )
            case _:
                pass


class HostLocator(Actor):
    """Spawned on a node to answer one call with the pid of that node's :class:`StepHost`."""

    def receive(self, msg: Any) -> Any:
        from ._service import service_of

        self.stop()
        return service_of(self.node).step_host()
