"""The actor shell of one run: a :class:`RunCoordinator` feeds its :class:`RunCore` the reports
of step attempts, timers and events, persists the core's facts through the run's journal before
it acts on them, places launches, runs plain local steps inline and the others in
:class:`StepWorker` actors (spawned on the node they were placed on), and stops when the run
ends or waits for an event (a waiting run holds no actor).

Ordering rule: the launch of a step that is not idempotent leaves only after the write that
records it (and every fact before it) is done, so a run resumed from its record never misses a
step that may have run: it reports it unknown. An idempotent step leaves at once (running it
again after a failover is harmless).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError, NodeDown, NoProc, UsageError
from ..actors import NOPROC, NORMAL, Actor, Down, Pid, Ref, ReplyHandle, TimerRef
from ._core import Abort, Launch, RunCore
from ._graph import Graph
from ._journal import Journal
from ._placement import choose
from ._policy import CapabilityPolicy
from ._values import Failure
from ._worker import StepWorker, run_function, runs_inline

if TYPE_CHECKING:
    from ._service import ContractsService

__all__ = ["RunCoordinator", "RunSpec"]

log = logging.getLogger("ember.contracts")

INLINE_BATCH = 256
"""Plain local steps run inline in one turn before the coordinator yields to the loop."""
MAX_RESTARTS = 3
"""Crashes of one run's coordinator before the run is failed."""


@dataclass(eq=False)
class RunSpec:
    """What a run's coordinator starts from; it outlives coordinator restarts."""

    run_id: str
    graph: Graph
    journal: Journal
    durable: bool
    inputs: Mapping[str, Any]
    policy: CapabilityPolicy
    epoch: int = 1
    record: Mapping[str, Any] | None = None
    """The persisted record to resume from (None: a fresh run)."""
    restarts: int = 0
    started: bool = False
    woke: bool = False
    start: dict[str, Any] | None = None
    """A durable run's start command, written with the coordinator's first facts (one write
    for the run's record and its first steps' starts) and None once the store created it."""
    answered: asyncio.Future[list[Any]] | None = None
    """Gets the store's answer to ``start`` (what ``start_run`` waits for)."""

    @property
    def contract_key(self) -> list[Any]:
        g = self.graph
        return [g.name, g.version, g.shape, g.ref]


@dataclass(eq=False, slots=True)
class _Attempt:
    attempt: int
    node: str
    pid: Pid | None = None
    ref: Ref | None = None
    aborted: bool = False


@dataclass(eq=False, slots=True)
class _Flush:
    launches: list[tuple[Launch, str]] = field(default_factory=list)
    waiters: list[ReplyHandle] = field(default_factory=list)


class RunCoordinator(Actor):
    """Coordinates run ``spec.run_id`` on behalf of ``service`` (supervised by it)."""

    def __init__(self, service: ContractsService, spec: RunSpec) -> None:
        self.kernel = self.node
        """This actor's node (an attribute: the per-step path reads it often)."""
        self.service = service
        self.spec = spec
        self.core: RunCore | None = None
        self.workers: dict[str, _Attempt] = {}
        self.refs: dict[Ref, str] = {}
        self.held: list[tuple[Launch, str]] = []
        self.waiters: list[ReplyHandle] = []
        self.writing = False
        self.timer: TimerRef | None = None
        self.timer_at: float | None = None
        self.written_phase: tuple[str, tuple[str, ...], float | None] | None = None
        self.end_queued = False
        self.end_written = False
        self.closing = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.contract_key = spec.contract_key
        self.inline: dict[str, bool] = {}
        """Whether a step runs on this node (it needs nothing and is not pinned), by name."""
        self.denied: dict[str, str | None] = {}
        """The capability the run's policy denies a step (None: none), by name."""
        self.hosts: dict[str, Pid] = {}
        """The step host of each node this run sends attempts to (monitored)."""
        self.host_refs: dict[Ref, str] = {}
        self.to_host: dict[str, list[tuple[Any, ...]]] = {}
        """Attempts waiting for their node's step host to be found."""
        self.pending: dict[str, int] = {}
        """Launches placed on each node by capability and not started yet (see ``choose``)."""
        if spec.started:
            spec.restarts += 1
            spec.record = None  # resume from what was persisted since
        spec.started = True
        # The run's span (started under the starter's by the service, or a root here when
        # sampled: a resumed run), ended when this coordinator ends.
        self.span = service.run_spans.pop(spec.run_id, None) or service.node.tracing.start_span(
            "contract.run", {"ember.run": spec.run_id}
        )
        self.kernel.send(self.pid, ("go",))

    # --- messages ---

    def receive(self, msg: Any) -> Any:
        now = self.service.clock()
        core = self.core
        if msg.__class__ is list and len(msg) == 5 and msg[0] == "done" and core is not None:
            # A remote step's report (a list: it came as a call's reply): the per-step path,
            # ahead of the match below (which takes the same report from a worker, a tuple).
            self._done(core, msg[1], msg[2], msg[3], now)
            self._turn(now)
            return None
        match msg:
            case ("done", str(key), int(attempt), value, _) if core is not None:
                self._done(core, key, attempt, value, now)
            case ("fail", str(key), int(attempt), list(failure), _) if core is not None:
                if self._settle(key, attempt):
                    self._observe(core, key, now)
                core.failed(key, attempt, Failure.from_list(failure), now)
            case ("denied", str(key), int(attempt), str(capability), str(by)) if core is not None:
                self._settle(key, attempt)
                core.denied(key, attempt, capability, by, now)
            case ("unknown", str(key), int(attempt), str(detail)) if core is not None:
                self._settle(key, attempt)
                core.unknown(key, attempt, detail, now)
            case Down(ref=ref, reason=reason) if core is not None:
                self._down(core, ref, reason, now)
            case ("host", str(node), Pid() as host):
                self._host_found(node, host)
            case ("no_host", str(node), str(why), bool(reached)) if core is not None:
                self._host_lost(core, node, why, now, reached=reached)
            case ("tick",) if core is not None:
                # Due at timer_at: the clock may read a hair earlier (float rounding).
                due = self.timer_at if self.timer_at is not None else now
                self.timer = self.timer_at = None
                core.tick(max(now, due))
            case ("event", str(name), payload) if core is not None:
                core.deliver(name, payload, now)
                self.spec.woke = True
            case ("events", dict(events)) if core is not None:
                for name, payload in events.items():
                    core.deliver(name, payload, now)
                self.spec.woke = True
            case ("cancel", str(reason)) if core is not None:
                core.cancel(reason, now)
            case ("ctx", str(key), int(attempt), str(op), list(args)) if core is not None:
                handle = self.defer_reply()
                if not core.is_running(key, attempt):
                    handle.fail(UsageError(f"attempt {attempt} of {key} is no longer current"))
                    return None
                if op == "checkpoint":
                    core.checkpoint(key, args[0], args[1])
                else:
                    core.effect(key, args[0], args[1], args[2])
                self.waiters.append(handle)
            case ("flushed", result, _Flush() as flush):
                self.writing = False
                if self.spec.start is not None:
                    if not self._started(result):
                        return None
                    result = ["ok"]  # the run's record is created, with the facts it carried
                if not self._accepted(result):
                    return None
                self._after_write(flush)
            case ("go",):
                self._begin(now)
            case ("record", dict(record)):
                self.spec.record = record
                self._begin(now)
            case _:
                pass
        self._turn(now)
        return None

    def _done(self, core: RunCore, key: str, attempt: int, value: Any, now: float) -> None:
        if self._settle(key, attempt):
            self._observe(core, key, now)
        if self.spec.durable and not _storable(value):
            failure = Failure(
                "TypeError",
                f"the result of {key} ({type(value).__name__}) cannot be stored: a "
                "durable run's step results must be msgpack data",
            )
            core.failed(key, attempt, failure, now)
        else:
            core.succeeded(key, attempt, value, now)

    async def terminate(self, reason: Any) -> None:
        if self.span is not None:
            self.span.end()
        for task in self.tasks:
            task.cancel()
        for key, att in list(self.workers.items()):  # a crash, or the node stopping
            self._settle(key, att.attempt)
            if not self.closing:
                self._stop_attempt(key, att)

    # --- starting ---

    def _begin(self, now: float) -> None:
        spec = self.spec
        service = self.service
        options = service.core_options()
        if spec.restarts > MAX_RESTARTS:
            log.error("run %s: its coordinator crashed %d times", spec.run_id, spec.restarts)
        record = spec.record
        if record is None and spec.restarts and spec.start is None:
            if spec.journal.sync:
                record = service.local.runs.get(spec.run_id)
            else:
                self._spawn_task(self._fetch_record())
                return
        if record is None:
            core = RunCore(spec.graph, spec.run_id, spec.inputs, **options)
            self.core = core
            core.start(now)
        else:
            events = {name: e["payload"] for name, e in record.get("events", {}).items()}
            core = RunCore.restore(
                spec.graph,
                spec.run_id,
                inputs=record["inputs"],
                tasks=record.get("tasks", {}),
                events=events,
                now=now,
                **options,
            )
            self.core = core
            spec.woke = True
            if record.get("status") == "cancelled":
                core.cancel(str((record.get("error") or {}).get("reason", "cancelled")), now)
        if spec.restarts > MAX_RESTARTS and core.outcome is None:
            core.crash(f"its coordinator crashed {spec.restarts} times", now)

    async def _fetch_record(self) -> None:
        record = await self.service.read_record(self.spec.run_id, durable=True)
        if record is not None:
            self.kernel.send(self.pid, ("record", record))

    # --- one turn: effects, then persist, then act ---

    def _turn(self, now: float) -> None:
        core = self.core
        if core is None or self.closing:
            return
        journal = self.spec.journal
        budget = INLINE_BATCH
        while True:
            for effect in core.take_effects():
                if isinstance(effect, Abort):
                    self._abort(effect)
                else:
                    self._place(core, effect, now)
            if (
                not journal.sync
                and self.spec.start is None
                and any(launch.step.idempotent for launch, _ in self.held)
            ):
                # Running an idempotent step again is harmless, so it need not wait for the
                # write that records it: a resumed run reruns what the record lacks. (Its
                # dependents' facts still go to the journal in order, after its own.)
                early = [h for h in self.held if h[0].step.idempotent]
                self.held = [h for h in self.held if not h[0].step.idempotent]
                budget -= self._release(early)
                if budget <= 0:
                    self.kernel.send(self.pid, ("continue",))
                    break
                continue
            if self.writing:
                break
            command = self._command(core, now)
            if command is None:
                break
            flush = _Flush(self.held, self.waiters)
            self.held, self.waiters = [], []
            if not journal.sync:
                self.writing = True
                journal.submit(command, functools.partial(self._written, flush))
                break
            if not self._accepted(journal.apply(command)):
                return
            ran = self._after_write(flush)
            budget -= ran
            if budget <= 0:
                self.kernel.send(self.pid, ("continue",))
                break
            if not core.has_news() and (core.outcome is None or self.end_queued):
                break  # nothing happened since that write
            now = self.service.clock()
        self._arm_timer()
        self._maybe_done(core)

    def _command(self, core: RunCore, now: float) -> dict[str, Any] | None:
        """The next write: the core's facts since the last one, or None if there are none."""
        changes, marks = core.take_changes()
        phase = core.phase()
        end = core.outcome if core.outcome is not None and not self.end_queued else None
        spec = self.spec
        quiet = not changes and not marks and phase == self.written_phase and end is None
        if quiet and not self.held and not self.waiters and spec.start is None:
            return None
        command: dict[str, Any] = {
            "op": "advance",
            "id": spec.run_id,
            "epoch": spec.epoch,
            "at": now,
            "tasks": changes,
        }
        if marks:
            command["marks"] = marks
        if phase != self.written_phase:
            reason = "" if phase[0] == "running" else core.state()[1]
            command["state"] = [phase[0], reason, list(phase[1]), phase[2]]
            self.written_phase = phase
        if spec.woke:
            command["woke"] = True
            spec.woke = False
        if end is not None:
            command["end"] = list(end)
            self.end_queued = True
        if spec.start is not None:  # the run's first write: its record and its first facts
            return {**spec.start, "then": command}
        return command

    def _written(self, flush: _Flush, result: list[Any] | BaseException) -> None:
        """The journal's answer to a write (from the loop, not from this actor)."""
        if isinstance(result, BaseException):
            if not isinstance(result, asyncio.CancelledError):  # else: the node is stopping
                log.error("run %s: a store write failed", self.spec.run_id, exc_info=result)
                self.kernel.exit(self.pid, result)  # a crash: the supervisor restarts us
            return
        self.kernel.send(self.pid, ("flushed", result, flush))

    def _started(self, result: list[Any]) -> bool:
        """The store answered the write that carried the run's start: go on if it created the
        run; otherwise (the id was taken, or this start had landed before a crash) stop and
        leave the run to what the service makes of it."""
        if self.service.start_answered(self.spec, result):
            self.spec.start = None
            return True
        self.closing = True
        self.stop()
        return False

    def _accepted(self, result: list[Any]) -> bool:
        """Go on after a write answered ``result``; False if the run is no longer ours."""
        if result[0] == "ok":
            if self.end_queued:
                self.end_written = True
            return True
        if result[0] == "gone" and self.core is not None and self.core.outcome is None:
            self.core.cancel(str(result[1] or "ended elsewhere"), self.service.clock())
            self.core.take_changes()
        why = f"taken over by {result[1]}" if result[0] == "fenced" else f"ended: {result[1]}"
        self._abandon(why)
        return False

    def _after_write(self, flush: _Flush) -> int:
        """The write of ``flush``'s facts is done: answer the checkpoints waiting for it and let
        its launches go; returns how many steps ran inline."""
        for handle in flush.waiters:
            handle.reply(None)
        return self._release(flush.launches)

    # --- placing and running ---

    def _place(self, core: RunCore, launch: Launch, now: float) -> None:
        step = launch.step
        local = self.inline.get(step.name)
        if local is None:
            local = self.inline[step.name] = step.on is None and not step.needs
            self.denied[step.name] = self.spec.policy.first_denied(step.capabilities)
        denied = self.denied[step.name]
        if denied is not None:
            core.denied(launch.key, launch.attempt, denied, "run", now)
            return
        if local:
            node = self.kernel.name
        else:
            service = self.service
            names, why = service.capable_nodes(step)
            if not names:
                denied_by = service.denied_by(step.needs)
                if denied_by is not None:
                    core.denied(launch.key, launch.attempt, denied_by[0], denied_by[1], now)
                else:
                    core.unplaced(launch.key, launch.attempt, why, now)
                return
            prefer = None
            if len(names) > 1:  # where its input was made (a chain stays on its node)
                tasks = core.tasks
                for dep in step.deps:
                    task = tasks.get(dep)
                    if task is not None and task.node is not None:
                        prefer = task.node
                        break
            node = choose(
                names,
                here=self.kernel.name,
                load=service.load,
                turn=service.next_turn(),
                prefer=prefer,
                pending=self.pending,
            )
            self.pending[node] = self.pending.get(node, 0) + 1
        core.placed(launch.key, launch.attempt, node, now)
        self.held.append((launch, node))

    def _release(self, launches: list[tuple[Launch, str]]) -> int:
        core = self.core
        assert core is not None
        service = self.service
        here = self.kernel.name
        ran = 0
        pending = self.pending
        inline = self.inline
        for launch, node in launches:
            key, attempt, call = launch.key, launch.attempt, launch.call
            step = launch.step
            if not inline[step.name]:  # placed by capability: now started (or dropped)
                left = pending[node] - 1
                if left:
                    pending[node] = left
                else:
                    del pending[node]
            if not core.is_running(key, attempt):
                continue
            if node == here and runs_inline(step, call):
                ran += 1
                try:
                    value = run_function(service, step, call, launch.args)
                except Exception as exc:
                    tb = "".join(traceback.format_exception(exc))
                    core.failed(key, attempt, Failure.of(exc, here, tb), service.clock())
                else:
                    if self.spec.durable and not _storable(value):
                        self.kernel.send(self.pid, ("done", key, attempt, value, here))
                        continue  # fails there, with the same message as a worker's result
                    core.succeeded(key, attempt, value, service.clock())
                service.stats.steps_inline += 1
                continue
            self._spawn_worker(launch, node)
        return ran

    def _spawn_worker(self, launch: Launch, node: str) -> None:
        spec = self.spec
        step = launch.step
        call = launch.call
        case = 0 if call is step.call else next(i for i, c in enumerate(step.calls) if c is call)
        args = (
            self.pid,
            spec.run_id,
            self.contract_key,
            launch.key,
            step.name,
            case,
            launch.attempt,
            launch.args,
            launch.checkpoints,
            launch.effects,
        )
        service = self.service
        service.load[node] = service.load.get(node, 0) + 1
        att = self.workers[launch.key] = _Attempt(launch.attempt, node)
        if node == self.kernel.name:
            att.pid = self.kernel.spawn_nowait(StepWorker, *args)
            att.ref = self.kernel.monitor(att.pid)
            self.refs[att.ref] = launch.key
            service.stats.steps_local += 1
            return
        service.stats.steps_remote += 1
        host = self.hosts.get(node)
        if host is None and (known := service.hosts.get(node)) is not None:
            self._host_found(node, known)
            host = known
        if host is not None:
            self._send_run(node, host, args)
            return
        queued = self.to_host.setdefault(node, [])
        queued.append(args)
        if len(queued) == 1:
            self._spawn_task(self._find_host(node))

    async def _find_host(self, node: str) -> None:
        try:
            host = await self.service.host_of(node)
        except EmberError as exc:
            self.kernel.send(self.pid, ("no_host", node, f"{type(exc).__name__}: {exc}", False))
        else:
            self.kernel.send(self.pid, ("host", node, host))

    def _host_found(self, node: str, host: Pid) -> None:
        if node not in self.hosts:
            ref = self.kernel.monitor(host)
            self.hosts[node] = host
            self.host_refs[ref] = node
        for args in self.to_host.pop(node, []):
            att = self.workers.get(args[3])
            if att is not None and att.attempt == args[6] and not att.aborted:
                self._send_run(node, host, args)

    def _send_run(self, node: str, host: Pid, args: tuple[Any, ...]) -> None:
        """Hand an attempt to ``node``'s step host, in a call: a plain function's report is its
        reply (served at once there), anything else reports here when its worker is done."""
        # A list, not a tuple: msgpack packs it natively and the host's match takes either.
        fut = self.kernel.call(host, ["run", *args], timeout=None)
        fut.add_done_callback(functools.partial(self._ran, node, args[3], args[6]))

    def _ran(self, node: str, key: str, attempt: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            report = fut.result()
            if report is not None:
                # As a call, not a message: an idle coordinator takes it at once (its receive
                # cannot suspend), without a trip through the run queue.
                taken = self.kernel.call(self.pid, report, timeout=None)
                if taken.done():  # the usual case: no callback to schedule
                    _consumed(taken)
                else:
                    taken.add_done_callback(_consumed)
        elif isinstance(exc, NoProc):  # the host is gone: its monitor says more
            reached = isinstance(exc, NodeDown)
            self.kernel.send(self.pid, ("no_host", node, str(exc), reached))
        else:  # e.g. arguments or a result that cannot travel
            self.kernel.send(
                self.pid, ("fail", key, attempt, Failure.of(exc, node).as_list(), node)
            )

    def _host_lost(
        self, core: RunCore, node: str, why: str, now: float, *, reached: bool = True
    ) -> None:
        """``node``'s step host is gone: every attempt sent there is lost (``reached``), or,
        when the host was gone before anything was sent to it (a node restarted since it was
        found), placed again."""
        self.to_host.pop(node, None)
        host = self.hosts.pop(node, None)
        if host is not None:
            self.service.forget_host(node, host)
        for key, att in list(self.workers.items()):
            if att.node == node:
                self._settle(key, att.attempt)
                if reached:
                    core.lost(key, att.attempt, now, detail=f"node {node} lost while it ran: {why}")
                else:
                    core.unplaced(key, att.attempt, f"node {node} restarted ({why})", now)

    def _settle(self, key: str, attempt: int) -> bool:
        """Forget the worker of a reported attempt; False if it was not the current one."""
        att = self.workers.get(key)
        if att is None or att.attempt != attempt:
            return False
        del self.workers[key]
        self._unload(att)
        if att.ref is not None:
            self.refs.pop(att.ref, None)
            self.kernel.demonitor(att.ref, flush=True)
        return True

    def _observe(self, core: RunCore, key: str, now: float) -> None:
        task = core.tasks.get(key)
        if task is not None and task.t0 is not None:
            self.service.observe_step(now - task.t0)
            if self.span is None:  # the run is not traced
                return
            self.service.node.tracing.record(
                "contract.step",
                now - task.t0,
                {"ember.run": self.spec.run_id, "ember.step": key},
                parent=self.span,
            )

    def _unload(self, att: _Attempt) -> None:
        load = self.service.load
        load[att.node] = max(0, load.get(att.node, 1) - 1)

    def _abort(self, abort: Abort) -> None:
        att = self.workers.get(abort.key)
        if att is None or att.attempt != abort.attempt:
            return
        self._settle(abort.key, abort.attempt)
        self._stop_attempt(abort.key, att)

    def _stop_attempt(self, key: str, att: _Attempt) -> None:
        att.aborted = True
        if att.pid is not None:
            self.kernel.exit(att.pid, "abort")
        elif (host := self.hosts.get(att.node)) is not None:
            self.kernel.send(host, ("abort", self.pid, key, att.attempt))

    def _down(self, core: RunCore, ref: Ref, reason: Any, now: float) -> None:
        node = self.host_refs.pop(ref, None)
        if node is not None:
            why = f"its step host exited ({reason})"
            self._host_lost(core, node, why, now, reached=reason != NOPROC)
            return
        key = self.refs.pop(ref, None)
        att = None if key is None else self.workers.get(key)
        if key is None or att is None or att.ref != ref:
            return
        self._settle(key, att.attempt)
        # A local worker reports before it exits, so an exit without a report is a failure.
        why = "the worker exited without a result" if reason == NORMAL else repr(reason)
        core.failed(key, att.attempt, Failure("WorkerExit", why, node=att.node), now)

    # --- timers, the end, and giving up ---

    def _arm_timer(self) -> None:
        core = self.core
        assert core is not None
        wake = core.next_wakeup()
        if wake == self.timer_at:
            return
        if self.timer is not None:
            self.kernel.cancel_timer(self.timer)
            self.timer = None
        self.timer_at = wake
        if wake is not None:
            self.timer = self.send_after(max(0.0, wake - self.service.clock()), ("tick",))

    def _maybe_done(self, core: RunCore) -> None:
        if self.writing or self.held or self.waiters or self.closing:
            return
        if core.outcome is not None:
            if not self.end_written:
                return
            self.closing = True
            self.service.run_ended(self.spec, core.outcome)
            self.stop()
        elif self.written_phase is not None and self.written_phase[0] == "waiting":
            if self.workers or core.running:
                return
            self.closing = True
            self.service.run_parked(self.spec, self.written_phase[2])
            self.stop()

    def _abandon(self, why: str) -> None:
        log.info("run %s: coordinator on %s stops: %s", self.spec.run_id, self.kernel.name, why)
        self.closing = True
        for key, att in list(self.workers.items()):
            self._settle(key, att.attempt)
            self._stop_attempt(key, att)
        self.service.run_abandoned(self.spec, why)
        self.stop()

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("run %s: coordinator task failed", self.spec.run_id, exc_info=exc)
            self.kernel.exit(self.pid, exc)  # a crash: the supervisor restarts the coordinator


def _consumed(fut: asyncio.Future[Any]) -> None:
    """Retrieve a fire-and-forget call's outcome (a coordinator that exited meanwhile)."""
    if not fut.cancelled():
        fut.exception()


def _storable(value: Any) -> bool:
    """Whether a step result can go into the durable store."""
    try:
        msgpack.packb(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True
