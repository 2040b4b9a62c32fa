"""The scheduler of one run as a pure state machine: which steps are ready, what is running and
done, retries with backoff, timeouts, events, cancellation.

No asyncio, no clock, no I/O: every input carries ``now``, and the outputs are data the actor
shell performs: :class:`Launch` and :class:`Abort` effects (:meth:`RunCore.take_effects`), the
facts to persist (:meth:`RunCore.take_changes`), and when to call :meth:`RunCore.tick` next
(:meth:`RunCore.next_wakeup`). :meth:`RunCore.restore` rebuilds a run from its persisted
record, which is how a run resumes on another node, and why replay needs no user code: a done
step's value is in the record, never recomputed.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._graph import Call, Graph, Step
from ._values import CollectionResult, EventTimedOut, Failure, ItemOutcome

__all__ = [
    "Abort",
    "Launch",
    "RunCore",
    "TaskStatus",
    "error_of_record",
]


class TaskStatus:
    """What a task (a step, or one item of a collection) is doing."""

    PENDING = "pending"
    """Its dependencies are not all done."""
    READY = "ready"
    """Queued to start (the run is at its parallelism bound)."""
    PLACING = "placing"
    """No node could take it yet; tried again until the placement timeout."""
    RUNNING = "running"
    RETRYING = "retrying"
    """An attempt failed; the next one starts at ``retry_at``."""
    WAITING = "waiting"
    """An await that was reached and has no event yet."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    """Its node was lost while it ran and it is not idempotent."""
    CANCELLED = "cancelled"


_ACTIVE = frozenset((TaskStatus.READY, TaskStatus.PLACING, TaskStatus.RUNNING, TaskStatus.RETRYING))


class Launch(NamedTuple):
    """Effect: start ``attempt`` of task ``key`` (``call`` with ``args``); report back with
    :meth:`RunCore.placed`, then :meth:`RunCore.succeeded` / ``failed`` / ``lost``."""

    key: str
    step: Step
    item: int | None
    attempt: int
    call: Call
    args: dict[str, Any]
    checkpoints: dict[str, Any]
    effects: dict[str, Any]


class Abort(NamedTuple):
    """Effect: stop ``attempt`` of task ``key`` if it still runs (a timeout, or the run ended);
    its result, if one comes, is ignored."""

    key: str
    attempt: int
    reason: str


class _Task:
    __slots__ = (
        "after",
        "attempt",
        "checkpoints",
        "deadline",
        "effects",
        "error",
        "item",
        "key",
        "node",
        "placing_since",
        "reason",
        "reruns",
        "retry_at",
        "status",
        "step",
        "t0",
        "t1",
        "value",
    )

    def __init__(self, key: str, step: Step, item: int | None) -> None:
        self.key = key
        self.step = step
        self.item = item
        self.status = TaskStatus.PENDING
        self.attempt = 0
        self.reruns = 0
        self.node: str | None = None
        self.t0: float | None = None
        self.t1: float | None = None
        self.value: Any = None
        self.error: Failure | None = None
        self.retry_at: float | None = None
        self.deadline: float | None = None
        self.placing_since: float | None = None
        self.reason = ""
        self.checkpoints: dict[str, Any] = {}
        self.effects: dict[str, Any] = {}
        self.after: str | None = None
        """The running task this one was launched after (pipelined, see
        :meth:`RunCore.launch_after`), until that one succeeds."""


class _Collection:
    __slots__ = ("done", "failed", "items", "outcomes")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.outcomes: list[ItemOutcome | None] = [None] * len(items)
        self.done = 0
        self.failed = 0


def error_record(error_type: str, /, **fields: Any) -> dict[str, Any]:
    """How a run's error is stored: its type name and constructor arguments."""
    return {"type": error_type, **fields}


def error_of_record(data: Mapping[str, Any]) -> Exception:
    """The typed error a stored record describes (see :func:`error_record`)."""
    from . import _errors

    fields = dict(data)
    cls = getattr(_errors, str(fields.pop("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, _errors.RunError)):
        return _errors.ContractError(f"run ended with {data!r}")
    try:
        return cls(**fields)
    except TypeError:
        return _errors.ContractError(f"run ended with {data!r}")


class RunCore:
    """One run of ``graph`` with ``inputs``. At most ``max_parallel`` tasks run at once; a task
    that no node can take is tried again every ``placement_retry`` seconds for up to
    ``placement_timeout``; an idempotent task whose node is lost is run again up to
    ``max_reruns`` times."""

    def __init__(
        self,
        graph: Graph,
        run_id: str,
        inputs: Mapping[str, Any],
        *,
        max_parallel: int = 64,
        placement_timeout: float = 30.0,
        placement_retry: float = 0.5,
        max_reruns: int = 3,
    ) -> None:
        self.graph = graph
        self.run_id = run_id
        self.max_parallel = max_parallel
        self.placement_timeout = placement_timeout
        self.placement_retry = placement_retry
        self.max_reruns = max_reruns
        self.values: dict[str, Any] = dict(inputs)
        self.tasks: dict[str, _Task] = {}
        steps = graph.steps
        self._remaining = {n: sum(1 for d in s.deps if d in steps) for n, s in steps.items()}
        self._done: set[str] = set()
        self._ready: deque[_Task] = deque()
        self._running: dict[str, _Task] = {}
        self._waiting: dict[str, _Task] = {}
        """Awaits reached and without their event."""
        self._parked: dict[str, _Task] = {}
        """Tasks waiting for a retry or for a node."""
        self._collections: dict[str, _Collection] = {}
        self.events: dict[str, Any] = {}
        """Delivered events (name -> payload), consumed or not."""
        self._timers: list[tuple[float, int, str, str, int]] = []
        self._seq = itertools.count()
        self._effects: list[Launch | Abort] = []
        self._changes: dict[str, dict[str, Any]] = {}
        self._marks: list[tuple[str, str, str, Any]] = []
        self.outcome: tuple[str, Any, Any] | None = None
        """``(status, outputs, error record)`` once the run ended."""
        self.started = False
        self._followers: dict[str, _Task] = {}
        """The task launched after each running task (by the running task's key)."""

    # --- inputs ------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin: every step without step dependencies is reached."""
        if self.started:
            return
        self.started = True
        for name, count in self._remaining.items():
            if count == 0:
                self._reach(self.graph.steps[name], now)
        self._check_finished(now)
        self._pump(now)

    def placed(self, key: str, attempt: int, node: str, now: float) -> None:
        """The shell chose ``node`` for a launch (recorded before the attempt runs)."""
        task = self._current(key, attempt)
        if task is None:
            return
        task.node = node
        task.reason = ""
        self._change(task, s=TaskStatus.RUNNING, a=attempt, n=node, t0=task.t0)

    def unplaced(self, key: str, attempt: int, why: str, now: float) -> None:
        """No node can take the launch now (``why`` says what is missing): wait and try again,
        until the placement timeout fails the run with :class:`NoCapableNode`."""
        task = self._current(key, attempt)
        if task is None:
            return
        if task.after is not None:  # held, and never sent: launched again when reached
            self._unlaunch(task)
            return
        self._drop_follower(task)
        del self._running[key]
        task.attempt -= 1  # that attempt never ran
        if task.placing_since is None:
            task.placing_since = now
        if now - task.placing_since >= self.placement_timeout:
            self._fail_run(
                now,
                error_record("NoCapableNode", run_id=self.run_id, step=task.step.name, needs=why),
            )
            return
        task.status = TaskStatus.PLACING
        self._parked[key] = task
        task.reason = f"waiting for a node: {why}"
        self._change(task, s=TaskStatus.PLACING, why=task.reason)
        self._timer(now + self.placement_retry, "place", key, task.attempt)
        self._pump(now)

    def denied(self, key: str, attempt: int, capability: str, by: str, now: float) -> None:
        """A policy denies a capability the launch needs: the run fails before it runs."""
        task = self._current(key, attempt)
        if task is None:
            return
        del self._running[key]
        task.status = TaskStatus.FAILED
        self._change(task, s=TaskStatus.FAILED, why=f"capability {capability} denied by {by}")
        self._fail_run(
            now,
            error_record(
                "CapabilityDenied",
                run_id=self.run_id,
                step=task.step.name,
                capability=capability,
                by=by,
            ),
        )

    def succeeded(self, key: str, attempt: int, value: Any, now: float) -> None:
        """Attempt ``attempt`` of ``key`` returned ``value``."""
        task = self._current(key, attempt)
        if task is None:
            return
        del self._running[key]
        task.status = TaskStatus.SUCCEEDED
        task.value = value
        task.t1 = now
        task.reason = ""
        self._change(task, s=TaskStatus.SUCCEEDED, v=value, t1=now, a=attempt)
        if task.item is None:
            self._step_done(task.step, value, now)
        else:
            self._item_done(
                task, ItemOutcome(task.item, True, value, node=task.node, attempts=attempt), now
            )
        self._check_finished(now)
        self._pump(now)

    def failed(self, key: str, attempt: int, failure: Failure, now: float) -> None:
        """Attempt ``attempt`` of ``key`` raised (or timed out: ``failure.timeout``)."""
        task = self._current(key, attempt)
        if task is None:
            return
        self._drop_follower(task)  # it did not start (see launch_after)
        del self._running[key]
        task.error = failure
        task.t1 = now
        retry = task.step.retry
        tries = attempt - task.reruns
        if retry is not None and retry.allows(
            tries, "StepTimeout" if failure.timeout else failure.kind
        ):
            task.status = TaskStatus.RETRYING
            self._parked[key] = task
            task.retry_at = now + retry.delay(tries)
            task.reason = f"attempt {attempt} failed ({failure.kind}); next at {task.retry_at:.3f}"
            self._change(
                task, s=TaskStatus.RETRYING, e=failure.as_list(), r=task.retry_at, why=task.reason
            )
            self._timer(task.retry_at, "retry", key, attempt)
            self._pump(now)
            return
        task.status = TaskStatus.FAILED
        self._change(task, s=TaskStatus.FAILED, e=failure.as_list(), t1=now)
        if task.item is not None and task.step.mode == "collect":
            outcome = ItemOutcome(
                task.item, False, None, failure.kind, failure.message, failure.node, attempt
            )
            self._item_done(task, outcome, now)
            self._check_finished(now)
            self._pump(now)
            return
        self._fail_run(
            now,
            error_record(
                "StepTimeout" if failure.timeout else "StepFailed",
                run_id=self.run_id,
                step=key,
                kind=failure.kind,
                message=failure.message,
                node=failure.node,
                attempts=attempt,
                remote_traceback=failure.traceback,
            ),
        )

    def lost(self, key: str, attempt: int, now: float, detail: str = "") -> None:
        """The node running attempt ``attempt`` of ``key`` was lost before it reported: an
        idempotent step runs again; any other makes the run's outcome unknown."""
        task = self._current(key, attempt)
        if task is None:
            return
        if task.after is not None:  # held there: it counts as launched
            if task.step.idempotent:
                self._unlaunch(task)  # runs (again) when what it waits for is done
                return
            detail = detail or f"node {task.node} lost while it held it after {task.after}"
        follower = self._followers.get(key)
        if follower is not None and task.step.idempotent and task.reruns < self.max_reruns:
            # Held there with it, so lost with it: the same rule (it may end the run).
            self.lost(follower.key, follower.attempt, now, detail)
            if self.outcome is not None:
                return
        del self._running[key]
        node = task.node
        if task.step.idempotent and task.reruns < self.max_reruns:
            task.reruns += 1
            task.status = TaskStatus.READY
            task.reason = f"run again: node {node} lost"
            self._change(task, s=TaskStatus.READY, why=task.reason)
            self._ready.append(task)
            self._pump(now)
            return
        task.status = TaskStatus.UNKNOWN
        task.t1 = now
        why = detail or f"node {node} lost while it ran"
        self._change(task, s=TaskStatus.UNKNOWN, t1=now, why=why)
        if task.step.idempotent:  # re-run too often: a plain failure, not an unknown one
            self._fail_run(
                now,
                error_record(
                    "StepFailed",
                    run_id=self.run_id,
                    step=key,
                    kind="NodeLost",
                    message=f"its node was lost {task.reruns + 1} times",
                    node=node,
                    attempts=attempt,
                ),
            )
            return
        self._end(
            now,
            "unknown",
            None,
            error_record("StepOutcomeUnknown", run_id=self.run_id, step=key, node=node, detail=why),
        )

    def unknown(self, key: str, attempt: int, detail: str, now: float) -> None:
        """Attempt ``attempt`` of ``key`` cannot tell whether a side effect happened (it started
        on an earlier attempt and never reported): the run's outcome is unknown."""
        task = self._current(key, attempt)
        if task is None:
            return
        del self._running[key]
        task.status = TaskStatus.UNKNOWN
        task.t1 = now
        self._change(task, s=TaskStatus.UNKNOWN, t1=now, why=detail)
        self._end(
            now,
            "unknown",
            None,
            error_record(
                "StepOutcomeUnknown", run_id=self.run_id, step=key, node=task.node, detail=detail
            ),
        )

    def pipelinable(self, key: str) -> Step | None:
        """The step that could be launched after running task ``key`` before it reports (see
        :meth:`launch_after`): ``key``'s only dependent, a plain step whose other dependencies
        are done, when the run has room for it and nothing queued ahead of it; else None."""
        task = self._running.get(key)
        if task is None or task.item is not None or key in self._followers or self._ready:
            return None
        users = self.graph.dependents.get(key, ())
        if len(users) != 1 or len(self._running) >= self.max_parallel:
            return None
        step = self.graph.steps[users[0]]
        if step.kind != "compute" or self._remaining[step.name] != 1 or step.name in self.tasks:
            return None
        return step

    def launch_after(self, key: str, step: Step, now: float) -> Launch | None:
        """Launch ``step`` (from :meth:`pipelinable`) before running task ``key`` is done, to
        be held where ``key`` runs and started there once ``key`` succeeds, with ``key``'s
        result as argument ``key`` (missing from the launch's ``args``). Its timeout counts
        from then (when ``key``'s success is reported here). If ``key`` fails or is
        unplaced, the launch is undone (the step never started); if ``key``'s node is lost,
        the held step counts as launched (see :meth:`lost`)."""
        call = step.call
        if call is None or call.contract is not None:
            return None
        values = self.values
        task = self._task(step)
        task.status = TaskStatus.RUNNING
        task.attempt += 1
        task.t0 = None
        task.node = None
        task.after = key
        self._running[task.key] = task
        self._followers[key] = task
        args = {name: values[name] for name in call.params if name != key}
        del now  # it starts when ``key`` is done (see _reach)
        return Launch(
            task.key, step, None, task.attempt, call, args, task.checkpoints, task.effects
        )

    def not_started(self, key: str, attempt: int) -> None:
        """Attempt ``attempt`` of ``key``, held after another step, was not started where it
        was sent (that step did not succeed there): as if it was never launched."""
        task = self._current(key, attempt)
        if task is not None and task.after is not None:
            self._unlaunch(task)

    def is_running(self, key: str, attempt: int) -> bool:
        """Whether attempt ``attempt`` of ``key`` is the one running (a report would count)."""
        return self._current(key, attempt) is not None

    def deliver(self, event: str, payload: Any, now: float) -> str:
        """An event arrived: ``"consumed"`` (its await was waiting), ``"kept"`` (for when the
        await is reached), ``"duplicate"`` (already delivered) or ``"unexpected"`` (no step
        awaits it)."""
        name = self.graph.awaits.get(event)
        if name is None:
            return "unexpected"
        if event in self.events:
            return "duplicate"
        self.events[event] = payload
        task = self.tasks.get(name)
        if task is not None and task.status == TaskStatus.WAITING and self.outcome is None:
            self._await_done(task, payload, now, timed_out=False)
            self._check_finished(now)
            self._pump(now)
            return "consumed"
        return "kept"

    def tick(self, now: float) -> None:
        """Fire what is due at ``now``: attempt timeouts, retries, await timeouts, placement
        retries."""
        timers = self._timers
        while timers and timers[0][0] <= now and self.outcome is None:
            _, _, kind, key, attempt = heapq.heappop(timers)
            task = self.tasks.get(key)
            if task is None:
                continue
            if kind == "deadline":
                if task.status == TaskStatus.RUNNING and task.attempt == attempt:
                    self._effects.append(Abort(key, attempt, "timeout"))
                    timeout = task.step.timeout or 0.0
                    self.failed(
                        key,
                        attempt,
                        Failure(
                            "StepTimeout",
                            f"attempt {attempt} took more than {timeout:g} s",
                            node=task.node,
                            timeout=True,
                        ),
                        now,
                    )
            elif kind == "retry":
                if task.status == TaskStatus.RETRYING and task.attempt == attempt:
                    del self._parked[key]
                    task.status = TaskStatus.READY
                    task.reason = "ready to retry"
                    self._ready.append(task)
            elif kind == "place":
                if task.status == TaskStatus.PLACING:
                    del self._parked[key]
                    task.status = TaskStatus.READY
                    self._ready.append(task)
            elif kind == "await" and task.status == TaskStatus.WAITING:
                del self._waiting[key]
                step = task.step
                if step.on_timeout == "continue":
                    self._await_done(
                        task, EventTimedOut(step.event or "", step.await_timeout or 0.0), now, True
                    )
                    self._check_finished(now)
                else:
                    task.status = TaskStatus.FAILED
                    self._change(task, s=TaskStatus.FAILED, t1=now, why="timed out")
                    self._fail_run(
                        now,
                        error_record(
                            "AwaitTimeout",
                            run_id=self.run_id,
                            step=step.name,
                            event=step.event,
                            timeout=step.await_timeout,
                        ),
                    )
        self._pump(now)

    def cancel(self, reason: str, now: float) -> None:
        """End the run as cancelled; running tasks are aborted."""
        if self.outcome is None:
            self._end(
                now,
                "cancelled",
                None,
                error_record("RunCancelled", run_id=self.run_id, reason=reason),
            )

    def crash(self, detail: str, now: float) -> None:
        """End the run as failed because its machinery broke (``RunCrashed``)."""
        self._fail_run(now, error_record("RunCrashed", run_id=self.run_id, detail=detail))

    def checkpoint(self, key: str, name: str, value: Any) -> None:
        """A task recorded intermediate state ``name`` (resumed from after a failover)."""
        task = self.tasks.get(key)
        if task is not None:
            task.checkpoints[name] = value
            self._marks.append(("cp", key, name, value))

    def effect(self, key: str, name: str, state: str, value: Any = None) -> None:
        """A task's side effect ``name`` is about to run (``"started"``) or ran (``"done"``)."""
        task = self.tasks.get(key)
        if task is not None:
            task.effects[name] = [state, value]
            self._marks.append(("fx", key, name, [state, value]))

    # --- outputs -----------------------------------------------------------------------------

    def take_effects(self) -> list[Launch | Abort]:
        """The launches and aborts to perform, in order (each returned once)."""
        out, self._effects = self._effects, []
        return out

    def take_changes(self) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, str, Any]]]:
        """The facts to persist since the last call: task fields by key (merged), then
        checkpoints and side effects in order."""
        changes, self._changes = self._changes, {}
        marks, self._marks = self._marks, []
        return changes, marks

    def has_news(self) -> bool:
        """Whether there are effects to perform or facts to persist (taken or not)."""
        return bool(self._effects or self._changes or self._marks)

    def next_wakeup(self) -> float | None:
        """When :meth:`tick` has something to do (None: nothing is timed)."""
        timers = self._timers
        while timers:
            _, _, kind, key, attempt = timers[0]
            task = self.tasks.get(key)
            if task is not None and _timer_live(task, kind, attempt):
                return timers[0][0]
            heapq.heappop(timers)
        return None

    @property
    def running(self) -> int:
        return len(self._running)

    def phase(self) -> tuple[str, tuple[str, ...], float | None]:
        """``(status, events waited on, earliest await deadline)``: what the record keeps of
        the run's state (cheaper than :meth:`state`, which also says why)."""
        if self.outcome is not None:
            return self.outcome[0], (), None
        waiting = self._waiting
        if not waiting:
            return "running", (), None
        events = tuple(t.step.event or "" for t in waiting.values())
        deadlines = [t.deadline for t in waiting.values() if t.deadline is not None]
        busy = self._running or self._ready or self._parked
        return ("running" if busy else "waiting"), events, min(deadlines) if deadlines else None

    def state(self) -> tuple[str, str, list[str], float | None]:
        """``(status, reason, events waited on, earliest await deadline)`` of the run now."""
        if self.outcome is not None:
            return self.outcome[0], "", [], None
        waiting = self._waiting
        events = [t.step.event or "" for t in waiting.values()]
        deadlines = [t.deadline for t in waiting.values() if t.deadline is not None]
        deadline = min(deadlines) if deadlines else None
        active = len(self._running) + len(self._ready) + len(self._parked)
        if active:
            head = [*itertools.islice(self._running.values(), 3)]
            head += [*itertools.islice(self._parked.values(), 3 - len(head))]
            reason = "; ".join(f"{t.key}: {_doing(t)}" for t in head)
            if active > len(head):
                reason += f"{'; ' if head else ''}{active - len(head)} more ready or running"
            return "running", reason, events, deadline
        if waiting:
            reason = "waiting for event " + ", ".join(repr(e) for e in events)
            return "waiting", reason, events, deadline
        return "running", "starting", events, deadline

    # --- the machinery ------------------------------------------------------------------------

    def _current(self, key: str, attempt: int) -> _Task | None:
        """The running task for a report, or None for a stale one (older attempt, or ended)."""
        task = self._running.get(key)
        if task is None or task.attempt != attempt or self.outcome is not None:
            return None
        return task

    def _change(self, task: _Task, **fields: Any) -> None:
        rec = self._changes.get(task.key)
        if rec is None:
            self._changes[task.key] = fields
        else:
            rec.update(fields)

    def _timer(self, when: float, kind: str, key: str, attempt: int) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), kind, key, attempt))

    def _task(self, step: Step, item: int | None = None) -> _Task:
        key = step.name if item is None else f"{step.name}[{item}]"
        task = self.tasks.get(key)
        if task is None:
            task = self.tasks[key] = _Task(key, step, item)
        return task

    def _reach(self, step: Step, now: float, since: float | None = None) -> None:
        """All of ``step``'s dependencies are done (an await restored from a record was reached
        at ``since``)."""
        if step.kind == "await":
            task = self._task(step)
            event = step.event or ""
            if event in self.events:
                self._await_done(task, self.events[event], now, timed_out=False)
                return
            task.status = TaskStatus.WAITING
            self._waiting[task.key] = task
            task.t0 = now if since is None else since
            task.reason = f"waiting for event {event!r}"
            if step.await_timeout is not None:
                task.deadline = task.t0 + step.await_timeout
                self._timer(task.deadline, "await", task.key, 0)
            self._change(task, s=TaskStatus.WAITING, t0=task.t0, d=task.deadline)
            return
        if step.kind == "collection":
            items = self.values.get(step.over or "")
            parent = self._task(step)
            if not isinstance(items, (list, tuple)):
                parent.status = TaskStatus.FAILED
                self._change(parent, s=TaskStatus.FAILED)
                self._fail_run(
                    now,
                    error_record(
                        "StepFailed",
                        run_id=self.run_id,
                        step=step.name,
                        kind="TypeError",
                        message=f"a collection needs a list of items in {step.over!r}, "
                        f"got {type(items).__name__}",
                    ),
                )
                return
            parent.status = TaskStatus.RUNNING
            parent.t0 = now
            self._change(parent, s=TaskStatus.RUNNING, t0=now, items=len(items))
            self._collections[step.name] = _Collection(list(items))
            if not items:
                self._finish_collection(step, now)
                return
            for i in range(len(items)):
                self._queue(self._task(step, i))
            return
        task = self._task(step)
        if task.after is not None:
            del self._followers[task.after]
            self._started(task, now)
            return
        self._queue(task)

    def _started(self, task: _Task, now: float) -> None:
        """A task launched after another (see :meth:`launch_after`) starts: that one is done."""
        task.after = None
        task.t0 = now
        if task.step.timeout is not None:
            self._timer(now + task.step.timeout, "deadline", task.key, task.attempt)
        self._change(task, t0=now)

    def _unlaunch(self, task: _Task) -> None:
        """Undo the launch of a task held after another: it never started (and its shell is
        told so by an abort)."""
        if self._followers.get(task.after or "") is task:
            del self._followers[task.after or ""]
        self._running.pop(task.key, None)
        self._effects.append(Abort(task.key, task.attempt, "not started"))
        task.after = None
        task.attempt -= 1
        task.status = TaskStatus.PENDING
        task.node = None
        task.reason = ""
        self._change(task, s=TaskStatus.PENDING, a=task.attempt, n=None)

    def _drop_follower(self, task: _Task) -> None:
        follower = self._followers.get(task.key)
        if follower is not None:
            self._unlaunch(follower)

    def _queue(self, task: _Task) -> None:
        task.status = TaskStatus.READY
        task.reason = ""
        self._ready.append(task)

    def _pump(self, now: float) -> None:
        """Start ready tasks while under the parallelism bound."""
        ready, running = self._ready, self._running
        while ready and len(running) < self.max_parallel and self.outcome is None:
            task = ready.popleft()
            if task.status != TaskStatus.READY:
                continue
            call, args = self._prepare(task, now)
            if call is None:
                continue
            task.status = TaskStatus.RUNNING
            task.attempt += 1
            task.t0 = now
            task.node = None
            running[task.key] = task
            if task.step.timeout is not None:
                self._timer(now + task.step.timeout, "deadline", task.key, task.attempt)
            self._effects.append(
                Launch(
                    task.key,
                    task.step,
                    task.item,
                    task.attempt,
                    call,
                    args,
                    task.checkpoints,
                    task.effects,
                )
            )

    def _prepare(self, task: _Task, now: float) -> tuple[Call | None, dict[str, Any]]:
        """What a task runs and its arguments (a branch picks its case here)."""
        step = task.step
        values = self.values
        call: Call | None
        if step.kind == "branch":
            selector = values.get(step.selector or "")
            try:
                call = step.cases.get(selector, step.default)
            except TypeError:  # an unhashable value picks no case
                call = step.default
            if call is None:
                task.status = TaskStatus.FAILED
                self._change(task, s=TaskStatus.FAILED)
                self._fail_run(
                    now,
                    error_record(
                        "StepFailed",
                        run_id=self.run_id,
                        step=step.name,
                        kind="LookupError",
                        message=f"no case for {step.selector} = {selector!r} and no default",
                    ),
                )
                return None, {}
        else:
            call = step.call
        assert call is not None
        if call.contract is not None:
            args = {child: values[name] for child, name in call.input_map.items()}
        else:
            args = {name: values[name] for name in call.params}
        if task.item is not None:
            item = self._collections[step.name].items[task.item]
            if call.contract is not None and isinstance(item, Mapping):
                args.update(item)
            elif call.item is not None:
                args[call.item] = item
        return call, args

    def _await_done(self, task: _Task, payload: Any, now: float, timed_out: bool) -> None:
        self._waiting.pop(task.key, None)
        task.status = TaskStatus.SUCCEEDED
        task.value = payload
        task.t1 = now
        task.reason = ""
        if timed_out:
            self._change(task, s=TaskStatus.SUCCEEDED, t1=now, x="timed_out")
        else:
            self._change(task, s=TaskStatus.SUCCEEDED, t1=now)
        self._step_done(task.step, payload, now)

    def _item_done(self, task: _Task, outcome: ItemOutcome, now: float) -> None:
        step = task.step
        coll = self._collections[step.name]
        if coll.outcomes[outcome.index] is not None:
            return
        coll.outcomes[outcome.index] = outcome
        coll.done += 1
        if coll.done == len(coll.items):
            self._finish_collection(step, now)

    def _finish_collection(self, step: Step, now: float) -> None:
        coll = self._collections[step.name]
        outcomes = tuple(o for o in coll.outcomes if o is not None)
        value: Any
        if step.mode == "collect":
            value = CollectionResult(outcomes)
        else:
            value = [o.value for o in outcomes]
        parent = self.tasks[step.name]
        parent.status = TaskStatus.SUCCEEDED
        parent.t1 = now
        parent.value = value
        self._change(parent, s=TaskStatus.SUCCEEDED, t1=now)
        self._step_done(step, value, now)

    def _step_done(self, step: Step, value: Any, now: float) -> None:
        name = step.name
        self.values[name] = value
        self._done.add(name)
        steps = self.graph.steps
        remaining = self._remaining
        for user in self.graph.dependents.get(name, ()):
            remaining[user] -= 1
            if remaining[user] == 0:
                self._reach(steps[user], now)

    def _check_finished(self, now: float) -> None:
        if self.outcome is None and len(self._done) == len(self.graph.steps):
            outputs = {out: self.values[ref] for out, ref in self.graph.outputs.items()}
            self._end(now, "succeeded", outputs, None)

    def _fail_run(self, now: float, error: dict[str, Any]) -> None:
        self._end(now, "failed", None, error)

    def _end(self, now: float, status: str, outputs: Any, error: dict[str, Any] | None) -> None:
        if self.outcome is not None:
            return
        self.outcome = (status, outputs, error)
        for key, task in list(self._running.items()):
            self._effects.append(Abort(key, task.attempt, status))
            task.status = TaskStatus.CANCELLED if status != "unknown" else task.status
            self._change(task, s=task.status, t1=now)
        self._running.clear()
        self._followers.clear()
        self._ready.clear()
        self._parked.clear()
        self._waiting.clear()
        self._timers.clear()

    # --- restoring a persisted run ---------------------------------------------------------

    @classmethod
    def restore(
        cls,
        graph: Graph,
        run_id: str,
        *,
        inputs: Mapping[str, Any],
        tasks: Mapping[str, Mapping[str, Any]],
        events: Mapping[str, Any],
        now: float,
        **options: Any,
    ) -> RunCore:
        """Rebuild a run from what was persisted of it (its inputs, task records and delivered
        events) as a new owner takes it over: done steps keep their values; a task that was
        running runs again if its step is idempotent, otherwise the run's outcome is unknown (it
        may have taken effect); retries, waits and their deadlines go on where they were."""
        core = cls(graph, run_id, inputs, **options)
        core.started = True
        core.events = dict(events)
        steps = graph.steps
        done = core._done
        for step in steps.values():
            rec = tasks.get(step.name, {})
            if rec.get("s") == TaskStatus.SUCCEEDED:
                task = core._task(step)
                task.status = TaskStatus.SUCCEEDED
                task.attempt = int(rec.get("a", 0))
                task.node = rec.get("n")
                task.t0, task.t1 = rec.get("t0"), rec.get("t1")
                task.value = core.values[step.name] = _stored_value(step, rec, tasks, events)
                done.add(step.name)
        for name, step in steps.items():
            core._remaining[name] = sum(1 for d in step.deps if d in steps and d not in done)
        reachable = [n for n, c in core._remaining.items() if c == 0 and n not in done]
        unknown: _Task | None = None
        for name in reachable:
            step = steps[name]
            rec = tasks.get(name, {})
            if step.kind == "await":
                since = rec.get("t0") if rec.get("s") == TaskStatus.WAITING else None
                core._reach(step, now, since=since)
            elif step.kind == "collection":
                core._reach(step, now)
                for i in range(len(core._collections.get(name, _Collection([])).items)):
                    item = core.tasks[f"{name}[{i}]"]
                    unknown = core._resume_task(item, tasks.get(item.key, {}), now) or unknown
            else:
                task = core._task(step)
                core._queue(task)
                unknown = core._resume_task(task, rec, now) or unknown
        for name in steps:
            rec = tasks.get(name, {})
            if name in done or core._remaining[name] == 0 or rec.get("s") != TaskStatus.RUNNING:
                continue
            if not steps[name].idempotent:
                # Launched after a step that had not reported (held there): it may have run.
                task = core._task(steps[name])
                task.attempt, task.node = int(rec.get("a", 0)), rec.get("n")
                task.reason = f"it was held on {task.node} after a step when its run moved"
                unknown = unknown or task
        core._check_finished(now)
        if unknown is not None and core.outcome is None:
            core._running[unknown.key] = unknown
            core.lost(unknown.key, unknown.attempt, now, detail=unknown.reason)
        core.tick(now)  # what fell due while nobody coordinated the run
        return core

    def _resume_task(self, task: _Task, rec: Mapping[str, Any], now: float) -> _Task | None:
        """Carry a task's persisted state over; returns it if it ran on a lost owner and is not
        idempotent (its outcome is unknown)."""
        task.attempt = int(rec.get("a", 0))
        task.checkpoints = dict(rec.get("cp", {}))
        task.effects = {k: list(v) for k, v in rec.get("fx", {}).items()}
        status = rec.get("s")
        if status == TaskStatus.SUCCEEDED and task.item is not None:
            self._ready.remove(task)
            task.status = TaskStatus.SUCCEEDED
            task.value = rec.get("v")
            self._item_done(
                task,
                ItemOutcome(task.item, True, task.value, node=rec.get("n"), attempts=task.attempt),
                now,
            )
            return None
        if status == TaskStatus.FAILED and task.item is not None and task.step.mode == "collect":
            self._ready.remove(task)
            task.status = TaskStatus.FAILED
            err = Failure.from_list(rec["e"])
            self._item_done(
                task,
                ItemOutcome(task.item, False, None, err.kind, err.message, err.node, task.attempt),
                now,
            )
            return None
        if status == TaskStatus.RETRYING and rec.get("r") is not None:
            self._ready.remove(task)
            task.status = TaskStatus.RETRYING
            self._parked[task.key] = task
            task.retry_at = float(rec["r"])
            self._timer(task.retry_at, "retry", task.key, task.attempt)
            return None
        if status == TaskStatus.RUNNING and not task.step.idempotent:
            self._ready.remove(task)
            task.status = TaskStatus.RUNNING
            task.node = rec.get("n")
            task.reason = f"it was running on {task.node} when its run moved"
            return task
        if status == TaskStatus.RUNNING:
            task.reruns += 1  # the lost attempt does not count against the retry policy
        return None


def _stored_value(
    step: Step,
    rec: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    events: Mapping[str, Any],
) -> Any:
    """A done step's value as its dependents see it: an await's is its event's payload (kept
    once, with the event), a collection's is rebuilt from its items."""
    if step.kind == "await":
        if rec.get("x") == "timed_out":
            return EventTimedOut(step.event or "", step.await_timeout or 0.0)
        return events.get(step.event or "")
    if step.kind == "collection":
        n = int(rec.get("items", 0))
        outcomes = []
        for i in range(n):
            item = tasks.get(f"{step.name}[{i}]", {})
            if item.get("s") == TaskStatus.SUCCEEDED:
                outcomes.append(
                    ItemOutcome(
                        i, True, item.get("v"), node=item.get("n"), attempts=int(item.get("a", 1))
                    )
                )
            else:
                err = Failure.from_list(item.get("e") or ["Unknown", "", "", None, False])
                outcomes.append(
                    ItemOutcome(
                        i, False, None, err.kind, err.message, err.node, int(item.get("a", 1))
                    )
                )
        if step.mode == "collect":
            return CollectionResult(tuple(outcomes))
        return [o.value for o in outcomes]
    return rec.get("v")


def _doing(task: _Task) -> str:
    """What a task is doing, for a run's reason."""
    if task.reason:
        return task.reason
    if task.status == TaskStatus.RUNNING and task.node is not None:
        return f"running on {task.node}"
    return task.status


def _timer_live(task: _Task, kind: str, attempt: int) -> bool:
    if kind == "deadline":
        return task.status == TaskStatus.RUNNING and task.attempt == attempt
    if kind == "retry":
        return task.status == TaskStatus.RETRYING and task.attempt == attempt
    if kind == "place":
        return task.status == TaskStatus.PLACING
    return task.status == TaskStatus.WAITING
