"""Steps placed on another node: every networked node runs one :class:`StepHost` actor,
registered as ``"ember.contracts.host"``, that takes the attempts remote coordinators send it,
one call each: a plain function runs at once, in the host, and its report is the call's reply
(a step costs about a remote call; a plain step may come with the step after it, run here
right after it if it succeeds, both reports in one reply); anything else gets a
:class:`StepWorker` of its own (a remote spawn in one message) that reports when done, and that
the host watches and stops when asked. A coordinator asks a node's host for its pid once and
monitors it: losing the host (its node) loses the attempts sent to it. The host also passes
``("wake", run_id)`` to its node's contracts service (a run owned there has news)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..actors import KILLED, NORMAL, Actor, Down, Pid, Ref
from ._graph import Call, Step
from ._values import Failure
from ._worker import StepWorker, failed, resolve, run_function, runs_inline

if TYPE_CHECKING:
    from ._service import ContractsService

__all__ = ["HOST_NAME", "StepHost"]

HOST_NAME = "ember.contracts.host"


class StepHost(Actor):
    """Answers ``"pid"`` with its pid; runs ``("run", coordinator, <StepWorker arguments>...)``
    attempts (the reply is the report of a plain function, None when a worker runs it);
    handles ``("abort", coordinator, key, attempt)``, ``("wake", run_id)`` and
    ``("query", "runs" | "show" | "start", arguments)`` (``ember runs``, ``ember run show``,
    ``ContractsService.start_on``). A worker that
    dies without reporting (killed from outside) is reported to its coordinator as failed."""

    def __init__(self, service: ContractsService) -> None:
        self.service = service
        self.workers: dict[tuple[Pid, str, int], tuple[Pid, Ref]] = {}
        self.by_ref: dict[Ref, tuple[Pid, str, int]] = {}
        self.aborted: set[Ref] = set()
        self.plans: dict[tuple[Any, ...], tuple[Step, Call, bool]] = {}
        """What an attempt of ``(contract name, version, shape, step, case)`` runs, and whether
        it runs inline (graphs are immutable once loaded: resolved once per step)."""

    def receive(self, msg: Any) -> Any:
        if msg.__class__ is list and msg[0] == "run":
            # The per-step path, ahead of the match: [run, coordinator, <worker arguments>...]
            # and, for a step sent with the one before it, [key, step, case, attempt, args].
            coordinator = msg[1]
            if coordinator.__class__ is Pid:
                if len(msg) == 11:
                    return self._run(coordinator, msg)
                if len(msg) == 12:
                    return self._pair(coordinator, msg)
        match msg:
            case "pid":
                return self.pid
            case ("run", Pid() as coordinator, *args) if len(args) == 9:  # a tuple of them
                return self._run(coordinator, ["run", coordinator, *args])
            case ("wake", str(run_id)):
                self.service.wake(run_id)
            case ("query", str(op), dict(kwargs)):
                self.service.answer_query(op, kwargs, self.defer_reply())
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

    def _run(self, coordinator: Pid, msg: list[Any]) -> tuple[Any, ...] | list[Any] | None:
        """Take an attempt: a plain function's report, or None when a worker runs it."""
        done = self._inline(msg)
        if done is not None:
            return done
        key, attempt = msg[4], msg[7]
        pid = self.node.spawn_nowait(StepWorker, *msg[1:])
        ref = self.node.monitor(pid)
        self.workers[(coordinator, key, attempt)] = (pid, ref)
        self.by_ref[ref] = (coordinator, key, attempt)
        return None

    def _pair(self, coordinator: Pid, msg: list[Any]) -> list[Any]:
        """Take an attempt and the one held after it: the second starts here as soon as the
        first succeeds, with its result as the argument named for it; otherwise it does not
        start. The reply carries both reports (None for one a worker sends later)."""
        first = msg[:11]
        done = self._run(coordinator, first)
        key, name, case, attempt, arguments = msg[11]
        if done is None or done[0] != "done":  # failed, denied, or in a worker: not started
            return ["pair", done, ["unstarted", key, attempt]]
        second = [*first[:4], key, name, case, attempt, {**arguments, msg[4]: done[3]}, {}, {}]
        return ["pair", done, self._run(coordinator, second)]

    def _inline(self, msg: list[Any]) -> tuple[Any, ...] | list[Any] | None:
        """The report of a plain-function attempt, run here at once as its coordinator would
        run it; None for one that needs a worker (async, ctx, blocking, a child contract)."""
        _, _, run_id, contract, key, step_name, case, attempt, arguments, _, _ = msg
        here = self.node.name
        service = self.service
        try:
            plan_key = (contract[0], contract[1], contract[2], step_name, case)
            plan = self.plans.get(plan_key)
            if plan is None:
                step, call, _ = resolve(service, contract, step_name, case, run_id)
                plan = self.plans[plan_key] = (step, call, runs_inline(step, call))
            step, call, inline = plan
            if not inline:
                return None
            if step.needs:
                denied = service.policy.first_denied(step.needs)
                if denied is not None:
                    return ("denied", key, attempt, denied, f"node {here}")
            # A list: it travels as the call's reply (see RunCoordinator._send_run).
            return ["done", key, attempt, run_function(service, step, call, arguments), here]
        except Exception as exc:
            return failed(exc, key, attempt, here)
