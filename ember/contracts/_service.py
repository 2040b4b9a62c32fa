"""``node.contracts``: the contracts service of a node. It starts runs (a supervised
coordinator actor each), keeps local runs in an in-memory :class:`RunStore` and durable ones in
the replicated store (the ``ember.contracts`` Raft group), delivers events, answers status
queries, places steps by capability, and, on the store leader's node, sweeps for runs whose
owner is gone (they are taken over) or that have new events or due timers (their owner is
woken)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError, UsageError
from .._tasks import OwnedTasks
from ..actors import Actor, Pid, Supervisor, call, child
from ..actors._node import current_node
from ..consensus import (
    Cluster,
    ClusterConfig,
    ClusterError,
    CommandFailed,
    NoLeader,
    NotLeader,
    OutcomeUnknown,
    Role,
)
from ..consensus._host import node_of
from ..consensus._types import ConfState
from ._cache import PureCache
from ._config import ContractsConfig
from ._contract import Contract, contract_class
from ._coordinator import RunCoordinator, RunSpec
from ._core import error_of_record
from ._errors import (
    DuplicateEvent,
    InvalidInputs,
    NoMatchingRun,
    ResultTimeout,
    RunConflict,
    RunNotFound,
    StoreUnavailable,
    VersionUnavailable,
)
from ._graph import Graph
from ._handle import RunHandle
from ._placement import Candidate
from ._policy import CapabilityPolicy, offered_capabilities
from ._status import RunStatus, RunSummary
from ._stephost import LOCATOR_REF, StepHost
from ._store import RunStore

if TYPE_CHECKING:
    from .._services import ServiceNode

__all__ = ["GROUP", "ContractsService", "ContractsStatistics", "service_of"]

log = logging.getLogger("ember.contracts")

GROUP = "ember.contracts"
"""The Raft group of the durable store."""
STORE_REF = "ember.contracts._store:RunStore"
WAKER_REF = "ember.contracts._service:Waker"
_FINAL = ("succeeded", "failed", "cancelled")
_ALIVE = ("alive", "suspect")
_LATENCY_BUCKETS = (0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0)


@dataclass(slots=True)
class ContractsStatistics:
    """Counters of a node's contracts service (read by ``statistics()``)."""

    runs_started: int = 0
    runs_resumed: int = 0
    """Coordinators started from a record: after a wait, a restart, or a takeover."""
    runs_succeeded: int = 0
    runs_failed: int = 0
    runs_cancelled: int = 0
    runs_unknown: int = 0
    runs_parked: int = 0
    """Runs that went to wait for an event (their coordinator stopped)."""
    runs_abandoned: int = 0
    """Coordinators that stopped because their run was taken over or ended elsewhere."""
    coordinators: int = 0
    """Coordinators running on this node now."""
    steps_inline: int = 0
    steps_local: int = 0
    steps_remote: int = 0
    step_seconds_total: float = 0.0
    step_seconds_max: float = 0.0
    step_latency: tuple[int, ...] = (0,) * (len(_LATENCY_BUCKETS) + 1)
    """Step attempts (inline ones excluded) by duration: at most 0.1 ms, 1 ms, 10 ms, 0.1 s,
    1 s, 10 s, 100 s, more."""
    events_delivered: int = 0
    events_again: int = 0
    events_duplicate: int = 0
    events_unmatched: int = 0
    takeovers: int = 0
    """Runs this node (as the store leader's) gave to a new owner."""
    declined: int = 0
    """Runs this node could not resume (their contract version is not loaded here)."""
    store_writes: int = 0
    store_retries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_evictions: int = 0
    cache_entries: int = 0

    def observe(self, seconds: float) -> None:
        """Count one step attempt that took ``seconds``."""
        self.step_seconds_total += seconds
        self.step_seconds_max = max(self.step_seconds_max, seconds)
        buckets = list(self.step_latency)
        for i, bound in enumerate(_LATENCY_BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
                break
        else:
            buckets[-1] += 1
        self.step_latency = tuple(buckets)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class LocalJournal:
    """A run's facts in this node's in-memory store, applied at once."""

    sync = True

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def apply(self, command: dict[str, Any]) -> list[Any]:
        if command["op"] == "advance":  # the per-step path: straight to its handler
            return self.store.advance(command)
        result: list[Any] = self.store.apply_command(command)
        return result

    async def write(self, command: dict[str, Any], request_id: str) -> list[Any]:
        return self.apply(command)


class RaftJournal:
    """A run's facts in the replicated store."""

    sync = False

    def __init__(self, service: ContractsService) -> None:
        self.service = service

    def apply(self, command: dict[str, Any]) -> list[Any]:
        raise UsageError("the durable store is written asynchronously")

    async def write(self, command: dict[str, Any], request_id: str) -> list[Any]:
        return await self.service.store_write(command, request_id, retry_forever=True)


class _Entry:
    """This node's handle on one of its runs: its coordinator (None while it starts or while
    the run waits), the futures waiting for its end (they get the outcome, or None: look in
    the store again), and events that came while it was (re)starting."""

    __slots__ = ("events", "pid", "resuming", "spec", "waiters")

    def __init__(self, spec: RunSpec | None) -> None:
        self.spec = spec
        self.pid: Pid | None = None
        self.resuming = False
        self.waiters: list[asyncio.Future[Any]] = []
        self.events: dict[str, Any] = {}

    def resolve(self, outcome: Any) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(outcome)
        self.waiters.clear()


class Waker(Actor):
    """Spawned on a run's owner to tell its contracts service to look at run ``run_id`` again
    (new events, a due timer, or it was just given the run)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    async def started(self) -> None:
        with contextlib.suppress(UsageError):
            service_of(self.node).wake(self.run_id)
        self.stop()


class ContractsService:
    """The contracts service of ``node`` (``node.contracts``); see ``docs/contracts.md``."""

    def __init__(self, node: ServiceNode, config: ContractsConfig | None = None) -> None:
        self.node = node
        self.config = config or ContractsConfig()
        self.local = RunStore(self.config.keep_finished)
        """This node's local (not durable) runs."""
        self.local_journal = LocalJournal(self.local)
        self.raft_journal = RaftJournal(self)
        self.cache = PureCache(self.config.cache_size)
        self.load: dict[str, int] = {}
        """Steps this node's runs have running on each node."""
        self.stats = ContractsStatistics()
        self.registry: dict[tuple[str, int], type[Contract]] = {}
        self.cluster: Cluster | None = None
        self._entries: dict[str, _Entry] = {}
        self._sup: Pid | None = None
        self._tasks = node.kernel.in_context(OwnedTasks, log, "contracts task")
        self._turn = 0
        self._candidates: list[Candidate] | None = None
        self._unlisten: Any = None
        self._time: Any = time.monotonic
        self._epoch = time.time() - time.monotonic()
        self._local_timers: list[tuple[float, str]] = []
        self._timer_handle: asyncio.TimerHandle | None = None
        self._dead_since: dict[str, float] = {}
        self.hosts: dict[str, Pid] = {}
        """The step host of each node, as found (see ``_stephost``)."""
        self._host: Pid | None = None
        self._nudged: dict[str, float] = {}
        self.started = False

    # --- life cycle ---

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._time = loop.time
        self._epoch = time.time() - loop.time()
        if self.node.mesh is not None:
            self._unlisten = self.node.on_member_event(self._on_member)
            self._publish_meta()
        self.started = True
        if self.config.store is not None:
            self._start_store(self.config.store)
            self._tasks.spawn(self._sweep_loop())
            self._tasks.spawn(self._recover())

    async def stop(self) -> None:
        self.started = False
        if self._unlisten is not None:
            self._unlisten()
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        await self._tasks.cancel_all()
        sup = self._sup
        if sup is not None:
            kernel = self.node.kernel
            done = kernel.wait_exit(sup)
            kernel.exit(sup, "shutdown")
            with contextlib.suppress(TimeoutError, EmberError):
                async with asyncio.timeout(5.0):
                    await done
        for entry in self._entries.values():
            for fut in entry.waiters:
                if not fut.done():
                    fut.set_exception(StoreUnavailable(f"node {self.node.name} stopped"))
        self._entries.clear()

    def _start_store(self, members: tuple[str, ...]) -> None:
        host = self.node.service("raft")
        if host is None:
            raise UsageError(f"node {self.node.name} runs no Raft host for the contracts store")
        raft = self.config.raft or ClusterConfig()
        voters = members[: raft.max_voters]
        for member in members:
            if node_of(member) != self.node.name:
                continue
            meta = {
                "group": GROUP,
                "member": member,
                "ref": STORE_REF,
                "config": raft.as_dict(),
                "durable": "auto",
            }
            host.create_member(meta, ConfState(tuple(voters), tuple(members[len(voters) :])))
        self.cluster = Cluster(
            host,
            GROUP,
            list(members),
            client_id=f"contracts-{self.node.name}-{self.node.creation}",
            max_voters=raft.max_voters,
        )

    # --- time ---

    def clock(self) -> float:
        """Seconds since the epoch, advancing with the loop's clock (virtual in tests): the
        time runs record and their durable deadlines are kept in."""
        now: float = self._epoch + self._time()
        return now

    # --- contracts this node can run ---

    def register(self, *contracts: type[Contract]) -> None:
        """Make these contract classes (and versions) runnable here: resumed runs and steps
        placed here find them by name and version (a class importable by its reference is
        found without this)."""
        for cls in contracts:
            graph = contract_class(cls).graph()
            self.registry[(graph.name, graph.version)] = cls

    def graph_for(self, name: str, version: int, shape: str, ref: str | None, run_id: str) -> Graph:
        """The graph of ``name`` v``version`` as loaded here, if its shape is the one the run
        started with; :class:`VersionUnavailable` otherwise."""
        cls = self.registry.get((name, version))
        if cls is None and ref is not None:
            with contextlib.suppress(UsageError):
                found = contract_class(ref)
                g = found.graph()
                if (g.name, g.version) == (name, version):
                    cls = found
                    self.registry[(name, version)] = found
        if cls is None:
            raise VersionUnavailable(run_id, name, version, f"not loaded on node {self.node.name}")
        graph = cls.graph()
        if graph.shape != shape:
            raise VersionUnavailable(
                run_id,
                name,
                version,
                f"its shape on node {self.node.name} differs from the one the run started with "
                "(steps, dependencies or events changed under the same version)",
            )
        return graph

    # --- starting runs ---

    async def start_run(
        self,
        contract: type[Contract] | str,
        inputs: Mapping[str, Any],
        *,
        run_id: str | None = None,
        durable: bool | None = None,
        policy: CapabilityPolicy | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
        parent: str | None = None,
    ) -> RunHandle:
        """Start a run of ``contract`` (see :meth:`Contract.start`)."""
        self._check_started()
        cls = contract_class(contract)
        graph = cls.graph()
        self.registry.setdefault((graph.name, graph.version), cls)
        values = _checked_inputs(graph, inputs)
        if durable is None:
            durable = self.cluster is not None and parent is None
        if durable and self.cluster is None:
            raise StoreUnavailable(
                f"node {self.node.name} has no contracts store: configure "
                "ContractsConfig(store=(...)) for durable runs"
            )
        if durable:
            try:
                msgpack.packb(values)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidInputs(
                    graph.name, f"inputs of a durable run must be msgpack data: {exc}"
                ) from exc
        if run_id is None:
            run_id = uuid.uuid4().hex
        elif not isinstance(run_id, str) or not run_id:
            raise UsageError(f"run_id must be a non-empty string, not {run_id!r}")
        command = {
            "op": "start",
            "id": run_id,
            "contract": graph.name,
            "version": graph.version,
            "ref": graph.ref,
            "shape": graph.shape,
            "inputs": values,
            "corr": {k: values[k] for k in graph.correlation},
            "awaits": list(graph.awaits),
            "owner": self.node.name,
            "at": self.clock(),
            "parent": parent,
            "durable": durable,
        }
        if durable:
            answer = await self.store_write(command, f"start:{run_id}", timeout=timeout)
        else:
            answer = self.local.apply_command(command)
        if answer[0] == "conflict":
            raise RunConflict(run_id, answer[1])
        created = answer[0] == "created"
        if created:
            self.stats.runs_started += 1
            journal = self.raft_journal if durable else self.local_journal
            spec = RunSpec(run_id, graph, journal, durable, values, policy or CapabilityPolicy())
            await self._launch(spec)
        elif answer[1]["owner"] == self.node.name and answer[1]["status"] not in _FINAL:
            self.wake(run_id)  # e.g. a retried start after this node restarted
        return RunHandle(self, run_id, graph.name, durable, created)

    async def run(
        self,
        contract: type[Contract] | str,
        inputs: Mapping[str, Any],
        *,
        policy: CapabilityPolicy | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Run ``contract`` on this node (not durable) and return its outputs."""
        handle = await self.start_run(contract, inputs, durable=False, policy=policy)
        return await handle.result(timeout=timeout)

    async def run_child(
        self, contract: Any, inputs: Mapping[str, Any], *, parent: str, key: str
    ) -> dict[str, Any]:
        """Run a composed contract for step ``key`` of run ``parent`` (on this node)."""
        handle = await self.start_run(contract, inputs, durable=False, parent=f"{parent}/{key}")
        return await handle.result()

    def handle(self, run_id: str, *, durable: bool | None = None) -> RunHandle:
        """A handle on an existing run (``durable`` None: this node's local store first)."""
        if durable is None:
            durable = run_id not in self.local.runs
        rec = self.local.runs.get(run_id)
        return RunHandle(self, run_id, rec["contract"] if rec else "?", durable, False)

    async def _launch(self, spec: RunSpec) -> None:
        entry = self._entries.get(spec.run_id)
        if entry is None:
            entry = self._entries[spec.run_id] = _Entry(spec)
        else:
            entry.spec = spec
        entry.resuming = True
        try:
            entry.pid = await Supervisor.start_child(await self._supervisor(), spec)
        finally:
            entry.resuming = False
        self.stats.coordinators += 1
        if entry.events:
            events, entry.events = entry.events, {}
            self.node.kernel.send(entry.pid, ("events", events))

    async def _supervisor(self) -> Pid:
        """The supervisor of this node's coordinators, started with the first run (an idle
        node runs no process for contracts)."""
        if self._sup is None:
            self._sup = self.node.kernel.spawn_nowait(
                Supervisor,
                [child(RunCoordinator, self, restart="transient", shutdown=1.0)],
                "simple_one_for_one",
                1000,
                1.0,
            )
        return self._sup

    def step_host(self) -> Pid:
        """This node's step host (started on first use)."""
        if self._host is None or self.node.kernel.process_info(self._host) is None:
            self._host = self.node.kernel.in_context(self.node.kernel.spawn_nowait, StepHost)
        return self._host

    async def host_of(self, node: str) -> Pid:
        """The step host of ``node``, found once by a locator spawned there."""
        if node == self.node.name:
            return self.step_host()
        host = self.hosts.get(node)
        if host is not None:
            return host
        kernel = self.node.kernel
        async with asyncio.timeout(self.config.store_timeout):
            locator = await kernel.spawn(LOCATOR_REF, on=node)
            host = await call(locator, "host", timeout=self.config.store_timeout)
        if not isinstance(host, Pid):
            raise UsageError(f"node {node} answered {host!r} for its step host")
        self.hosts[node] = host
        return host

    def forget_host(self, node: str, host: Pid) -> None:
        if self.hosts.get(node) == host:
            del self.hosts[node]

    # --- what coordinators report ---

    def core_options(self) -> dict[str, Any]:
        c = self.config
        return {
            "max_parallel": c.max_parallel,
            "placement_timeout": c.placement_timeout,
            "placement_retry": c.placement_retry,
            "max_reruns": c.max_reruns,
        }

    def run_ended(self, spec: RunSpec, outcome: tuple[str, Any, Any]) -> None:
        status = outcome[0]
        counter = f"runs_{status}"
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        entry = self._entries.pop(spec.run_id, None)
        self.stats.coordinators -= 1
        if entry is not None:
            entry.resolve(outcome)

    def run_parked(self, spec: RunSpec, deadline: float | None) -> None:
        self.stats.runs_parked += 1
        self._detach(spec, keep_waiters=not spec.durable)
        if deadline is not None:
            self._at(deadline, spec.run_id)

    def run_abandoned(self, spec: RunSpec, why: str) -> None:
        self.stats.runs_abandoned += 1
        self._detach(spec, keep_waiters=False)

    def _detach(self, spec: RunSpec, *, keep_waiters: bool) -> None:
        """The run's coordinator here stopped and the run goes on (waiting, or elsewhere):
        local waiters go on waiting for its end here; others look in the store again."""
        self.stats.coordinators -= 1
        entry = self._entries.get(spec.run_id)
        if entry is None:
            return
        entry.pid = None
        entry.spec = None
        if not keep_waiters:
            entry.resolve(None)
        if not entry.waiters and not entry.events:
            del self._entries[spec.run_id]

    # --- placement ---

    def _publish_meta(self) -> None:
        """Put this node's offered and denied capabilities in its mesh metadata, where other
        nodes' placement reads them."""
        mesh = self.node.mesh
        if mesh is None:
            return
        me = next((m for m in self.node.members() if m.name == self.node.name), None)
        meta = dict(me.meta) if me is not None else {}
        changed = False
        if self.config.capabilities is not None:
            meta["capabilities"] = list(self.config.capabilities)
            changed = True
        if self.config.deny:
            meta["contracts_deny"] = list(self.config.deny)
            changed = True
        if changed:
            mesh.update_meta(meta)

    def _on_member(self, event: Any) -> None:
        self._candidates = None
        if event.kind in ("joined", "alive"):
            self._dead_since.pop(event.member.name, None)

    def candidates(self) -> list[Candidate]:
        """The nodes steps may be placed on now, with what they offer and deny."""
        if self._candidates is not None and self.node.mesh is not None:
            return self._candidates
        here = self.node.name
        own = self.config.capabilities
        members = self.node.members()
        out: list[Candidate] = []
        seen = False
        for m in members:
            if m.status.value not in _ALIVE:
                continue
            if m.name == here:
                seen = True
                offers = (
                    frozenset(own)
                    if own is not None
                    else offered_capabilities(m.meta.get("capabilities"))
                )
                out.append(Candidate(here, offers, frozenset(self.config.deny)))
            else:
                offers = offered_capabilities(m.meta.get("capabilities"))
                deny = m.meta.get("contracts_deny") or ()
                out.append(Candidate(m.name, offers, frozenset(deny)))
        if not seen:
            offers = frozenset(own) if own is not None else None
            out.insert(0, Candidate(here, offers, frozenset(self.config.deny)))
            if self.node.mesh is None:
                transport = self.node.transport
                for peer in sorted(transport.connected_nodes()) if transport else ():
                    out.append(Candidate(peer))
        self._candidates = out
        return out

    def denied_by(self, needs: frozenset[str]) -> tuple[str, str] | None:
        """``(capability, "node a, node b")`` when every node that offers ``needs`` denies one
        of them (a policy refusal, not a missing node); None otherwise."""
        offering = [c for c in self.candidates() if c.offers is None or needs <= c.offers]
        if not offering or not all(c.denies & needs for c in offering):
            return None
        capability = sorted(needs & offering[0].denies)[0]
        return capability, ", ".join(f"node {c.name}" for c in offering)

    def next_turn(self) -> int:
        self._turn += 1
        return self._turn

    def alive_nodes(self) -> set[str]:
        """The nodes this one believes alive (itself included)."""
        here = self.node.name
        if self.node.mesh is not None:
            return {here} | {m.name for m in self.node.members() if m.status.value in _ALIVE}
        transport = self.node.transport
        return {here, *(transport.connected_nodes() if transport is not None else ())}

    # --- events ---

    async def deliver_event(
        self,
        event: str,
        correlation: Mapping[str, Any] | None = None,
        payload: Any = None,
        *,
        run_id: str | None = None,
        event_id: str | None = None,
        duplicates: str = "reject",
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[str]:
        """Deliver ``event`` with ``payload`` to the unfinished runs whose correlation keys
        equal ``correlation`` and that await it (or to run ``run_id``); returns the ids of the
        runs that took it. An event that comes before its await is reached is kept. A second
        delivery of an event to a run raises :class:`DuplicateEvent` (``duplicates="ignore"``:
        dropped); the same delivery again (same ``event_id``) is not a duplicate. No run:
        :class:`NoMatchingRun`."""
        self._check_started()
        if not isinstance(event, str) or not event:
            raise UsageError(f"an event is a non-empty name, not {event!r}")
        if correlation is None and run_id is None:
            raise UsageError("deliver_event needs correlation={...} or run_id=")
        if duplicates not in ("reject", "ignore"):
            raise UsageError(f"duplicates must be 'reject' or 'ignore', not {duplicates!r}")
        corr = dict(correlation or {})
        event_id = event_id or uuid.uuid4().hex
        command = {
            "op": "event",
            "event": event,
            "corr": corr,
            "run": run_id,
            "payload": payload,
            "event_id": event_id,
            "at": self.clock(),
            "from": self.node.name,
        }
        answers: list[tuple[list[Any], bool]] = [(self.local.apply_command(command), False)]
        if self.cluster is not None:
            try:
                msgpack.packb(command)
            except (TypeError, ValueError, OverflowError) as exc:
                raise UsageError(
                    f"an event payload for durable runs must be msgpack data: {exc}"
                ) from exc
            answers.append(
                (await self.store_write(command, f"event:{event_id}", timeout=timeout), True)
            )
        took: list[str] = []
        dup: list[Any] | None = None
        why = ""
        for answer, durable in answers:
            if answer[0] == "none":
                why = why or answer[1]
                continue
            for run, owner, _epoch, _status, verdict, kept in answer[1]:
                if verdict == "duplicate":
                    self.stats.events_duplicate += 1
                    dup = dup or [run, kept]
                    continue
                took.append(run)
                if verdict == "again":
                    self.stats.events_again += 1
                    continue
                self.stats.events_delivered += 1
                self._notify(run, owner, event, payload, durable)
        if not took:
            if dup is not None:
                if duplicates == "ignore":
                    return []
                raise DuplicateEvent(dup[0], event, dup[1])
            self.stats.events_unmatched += 1
            raise NoMatchingRun(event, corr if run_id is None else {"run_id": run_id}, why)
        return took

    def _notify(self, run_id: str, owner: str, event: str, payload: Any, durable: bool) -> None:
        if owner != self.node.name:
            self._wake_remote(owner, run_id)
            return
        entry = self._entries.get(run_id)
        if entry is not None and entry.pid is not None:
            self.node.kernel.send(entry.pid, ("event", event, payload))
        elif entry is not None:
            entry.events[event] = payload  # its coordinator is starting
        else:
            self.wake(run_id)

    def wake(self, run_id: str) -> None:
        """Look at run ``run_id`` again: a running coordinator rereads its events; a run
        owned here without one (waiting, or just given to this node) is resumed."""
        entry = self._entries.get(run_id)
        if entry is not None and entry.pid is not None:
            if entry.spec is not None and entry.spec.durable:
                self._tasks.spawn(self._refresh(run_id, entry.pid))
            return
        if entry is not None and entry.resuming:
            return
        if entry is None:
            entry = self._entries[run_id] = _Entry(None)
        entry.resuming = True
        self._tasks.spawn(self._resume(run_id, entry))

    async def _refresh(self, run_id: str, pid: Pid) -> None:
        rec = await self.read_record(run_id, durable=True)
        if rec is not None:
            events = {name: e["payload"] for name, e in rec["events"].items()}
            self.node.kernel.send(pid, ("events", events))

    async def _resume(self, run_id: str, entry: _Entry) -> None:
        try:
            local = run_id in self.local.runs
            rec = self.local.runs.get(run_id)
            if not local:
                rec = await self.read_record(run_id, durable=True)
            if rec is None or rec["status"] in _FINAL or rec["owner"] != self.node.name:
                self._entries.pop(run_id, None)
                if rec is not None and rec["status"] in _FINAL:
                    entry.resolve((rec["status"], rec["result"], rec["error"]))
                else:
                    entry.resolve(None)
                return
            try:
                graph = self.graph_for(
                    rec["contract"], rec["version"], rec["shape"], rec["ref"], run_id
                )
            except VersionUnavailable as exc:
                self._entries.pop(run_id, None)
                entry.resolve(None)
                self.stats.declined += 1
                if not local:
                    await self.store_write(
                        {
                            "op": "decline",
                            "id": run_id,
                            "node": self.node.name,
                            "reason": str(exc),
                            "at": self.clock(),
                        },
                        f"decline:{run_id}:{self.node.name}:{uuid.uuid4().hex[:8]}",
                    )
                return
            journal = self.local_journal if local else self.raft_journal
            spec = RunSpec(
                run_id,
                graph,
                journal,
                not local,
                rec["inputs"],
                CapabilityPolicy(),
                epoch=rec["epoch"],
                record=rec,
            )
            self.stats.runs_resumed += 1
            await self._launch(spec)
        except BaseException:
            entry.resuming = False
            if self._entries.get(run_id) is entry and entry.pid is None:
                del self._entries[run_id]
                entry.resolve(None)
            raise

    def _wake_remote(self, owner: str, run_id: str) -> None:
        async def wake() -> None:
            with contextlib.suppress(EmberError, TimeoutError, OSError):
                async with asyncio.timeout(5.0):
                    await self.node.kernel.spawn(WAKER_REF, run_id, on=owner)

        self._tasks.spawn(wake())

    def _at(self, when: float, run_id: str) -> None:
        """Wake ``run_id`` at ``when`` (a parked local run's await deadline)."""
        heapq.heappush(self._local_timers, (when, run_id))
        self._arm_local_timer()

    def _arm_local_timer(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        if not self._local_timers:
            return
        due = self._local_timers[0][0]
        delay = max(0.0, due - self.clock())
        loop = asyncio.get_running_loop()
        self._timer_handle = self.node.kernel.in_context(
            loop.call_later, delay, self._local_timer, due
        )

    def _local_timer(self, due: float) -> None:
        self._timer_handle = None
        now = max(self.clock(), due)  # due now, whatever float rounding says
        while self._local_timers and self._local_timers[0][0] <= now:
            _, run_id = heapq.heappop(self._local_timers)
            self.wake(run_id)
        self._arm_local_timer()

    # --- queries ---

    async def read_record(
        self, run_id: str, *, durable: bool | None = None
    ) -> dict[str, Any] | None:
        """The stored record of a run (``durable`` None: local store first)."""
        if durable is not True:
            rec = self.local.runs.get(run_id)
            if rec is not None or durable is False:
                return rec
        if self.cluster is None:
            return None
        try:
            rec = await self.cluster.read(["run", run_id], timeout=self.config.store_timeout)
        except (ClusterError, TimeoutError) as exc:
            raise StoreUnavailable(f"cannot read run {run_id}: {exc}") from exc
        return rec  # type: ignore[no-any-return]

    async def status(self, run_id: str, *, durable: bool | None = None) -> RunStatus:
        """Where run ``run_id`` stands; :class:`RunNotFound` if no store has it."""
        rec = await self.read_record(run_id, durable=durable)
        if rec is None:
            raise RunNotFound(run_id)
        status = RunStatus.of(rec)
        return _with_reason(status) if status.status == "running" else status

    async def runs(
        self,
        *,
        contract: str | None = None,
        status: str | None = None,
        limit: int = 100,
        durable: bool | None = None,
    ) -> list[RunSummary]:
        """Runs of this node's local store and of the durable store, newest first."""
        key = ["runs", contract, status, limit]
        out = [] if durable is True else [RunSummary.of(s) for s in self.local.read(key)]
        if self.cluster is not None and durable is not False:
            try:
                found = await self.cluster.read(key, timeout=self.config.store_timeout)
            except (ClusterError, TimeoutError) as exc:
                raise StoreUnavailable(f"cannot list runs: {exc}") from exc
            out.extend(RunSummary.of(s) for s in found)
        out.sort(key=lambda s: s.created, reverse=True)
        return out[:limit]

    async def result(
        self,
        run_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        durable: bool | None = None,
    ) -> dict[str, Any]:
        """The outputs of run ``run_id`` once it ends (raises the error that ended it)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = 0.02
        while True:
            rec = await self.read_record(run_id, durable=durable)
            if rec is None:
                raise RunNotFound(run_id)
            if rec["status"] in _FINAL or (rec["status"] == "unknown" and rec.get("error")):
                return _outcome(rec["status"], rec["result"], rec["error"])
            entry = self._entries.get(run_id)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise ResultTimeout(run_id, timeout or 0.0)
            here = entry is not None and (entry.pid is not None or entry.resuming)
            if here or not rec["durable"]:
                if entry is None:  # a local run parked for an event: wait for its end here
                    entry = self._entries[run_id] = _Entry(None)
                fut: asyncio.Future[Any] = loop.create_future()
                entry.waiters.append(fut)
                try:
                    async with asyncio.timeout(remaining):
                        outcome = await fut
                except TimeoutError:
                    raise ResultTimeout(run_id, timeout or 0.0) from None
                finally:
                    if fut in entry.waiters:
                        entry.waiters.remove(fut)
                if outcome is not None:
                    return _outcome(*outcome)
                continue
            # A durable run coordinated elsewhere (or waiting): look again in a while.
            await asyncio.sleep(pause if remaining is None else min(pause, remaining))
            pause = min(1.0, pause * 2)

    async def cancel(
        self, run_id: str, reason: str = "cancelled", *, durable: bool | None = None
    ) -> bool:
        """Cancel run ``run_id``: it ends as ``cancelled`` at once and its running steps are
        aborted. False if it had finished; :class:`RunNotFound` if unknown."""
        command = {"op": "cancel", "id": run_id, "reason": reason, "at": self.clock()}
        if durable is not True and run_id in self.local.runs:
            answer = self.local.apply_command(command)
        elif self.cluster is not None and durable is not False:
            answer = await self.store_write(command, f"cancel:{run_id}:{uuid.uuid4().hex[:8]}")
        else:
            raise RunNotFound(run_id)
        if answer[0] == "none":
            raise RunNotFound(run_id)
        if answer[0] == "final":
            return False
        entry = self._entries.get(run_id)
        if entry is not None and entry.pid is not None:
            self.node.kernel.send(entry.pid, ("cancel", reason))
        elif entry is not None:
            error = {"type": "RunCancelled", "run_id": run_id, "reason": reason}
            entry.resolve(("cancelled", None, error))
            if not entry.resuming:
                del self._entries[run_id]
        elif answer[1] != self.node.name:
            self._wake_remote(answer[1], run_id)
        return True

    def statistics(self) -> ContractsStatistics:
        """This node's counters (a copy)."""
        stats = self.stats
        cache = self.cache
        stats.cache_hits, stats.cache_misses = cache.hits, cache.misses
        stats.cache_evictions, stats.cache_entries = cache.evictions, len(cache)
        return ContractsStatistics(**stats.as_dict())

    def runs_by_status(self) -> dict[str, int]:
        """This node's local runs by status (durable runs are counted by the store leader)."""
        out: dict[str, int] = {}
        for rec in self.local.runs.values():
            out[rec["status"]] = out.get(rec["status"], 0) + 1
        return out

    # --- the durable store ---

    async def store_write(
        self,
        command: dict[str, Any],
        request_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        retry_forever: bool = False,
    ) -> list[Any]:
        """Write ``command`` to the durable store, retrying with the same request id through
        leader changes (it applies once) for ``timeout`` seconds (the config's
        ``store_timeout`` by default; ``retry_forever``: until it is written)."""
        cluster = self.cluster
        if cluster is None:
            raise StoreUnavailable(f"node {self.node.name} has no contracts store")
        loop = asyncio.get_running_loop()
        budget = self.config.store_timeout if timeout is None else timeout
        deadline = loop.time() + budget
        pause = 0.02
        self.stats.store_writes += 1
        while True:
            remaining = deadline - loop.time()
            try:
                answer: list[Any] = await cluster.write(
                    command,
                    request_id=request_id,
                    timeout=max(0.05, min(remaining, 5.0)) if not retry_forever else 5.0,
                )
                return answer
            except CommandFailed as exc:  # a bug in the store, the same on every member
                raise StoreUnavailable(
                    f"the contracts store refused {command['op']}: {exc}"
                ) from exc
            except (OutcomeUnknown, NoLeader, NotLeader, ClusterError, TimeoutError) as exc:
                if not retry_forever and loop.time() + pause >= deadline:
                    raise StoreUnavailable(
                        f"the contracts store did not take {command['op']} within {budget} s: {exc}"
                    ) from exc
                self.stats.store_retries += 1
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 2)

    def _store_leader_state(self) -> RunStore | None:
        """This node's store member's state machine if that member leads now."""
        host = self.node.service("raft")
        if host is None:
            return None
        for (group, _), member in list(host.members.items()):
            if group == GROUP and member.running and member.role == Role.LEADER:
                sm = member.replica.state_machine
                return sm if isinstance(sm, RunStore) else None
        return None

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            store = self._store_leader_state()
            if store is not None:
                try:
                    await self._sweep(store)
                except StoreUnavailable as exc:
                    log.warning("contracts sweep on %s: %s", self.node.name, exc)

    async def _sweep(self, store: RunStore) -> None:
        """Give the runs of owners that are gone to live nodes; wake owners of runs with new
        events or due deadlines."""
        now = self.clock()
        alive = sorted(self.alive_nodes())
        for run_id, owner, epoch, status, wake, deadline, declined, _c, _v in store.read(
            ["active"]
        ):
            if status in _FINAL:
                continue
            if owner not in alive:
                since = self._dead_since.setdefault(owner, now)
                if now - since < self.config.takeover_grace:
                    continue
                choices = [n for n in alive if n not in declined]
                if not choices:
                    continue
                to = choices[hash(run_id) % len(choices)]
                answer = await self.store_write(
                    {
                        "op": "claim",
                        "id": run_id,
                        "node": to,
                        "epoch": epoch,
                        "at": now,
                        "why": f"node {owner} is gone; taken over by {to}",
                    },
                    f"claim:{run_id}:{epoch}",
                )
                if answer[0] == "ok":
                    self.stats.takeovers += 1
                    self._poke(to, run_id)
                continue
            due = (wake is not None and now - wake >= 1.0) or (
                status == "waiting" and deadline is not None and deadline <= now
            )
            if status == "unknown" and declined and set(alive) - set(declined):
                due = True
            if due and now - self._nudged.get(run_id, -1e18) >= 2.0:
                self._nudged[run_id] = now
                self._poke(owner, run_id)

    def _poke(self, node: str, run_id: str) -> None:
        if node == self.node.name:
            self.wake(run_id)
        else:
            self._wake_remote(node, run_id)

    async def _recover(self) -> None:
        """After a (re)start, resume the durable runs this node owns that are not waiting."""
        assert self.cluster is not None
        while True:
            try:
                active = await self.cluster.read(["active"], timeout=self.config.store_timeout)
                break
            except (ClusterError, TimeoutError):
                await asyncio.sleep(0.2)
        here = self.node.name
        for run_id, owner, _e, status, wake, deadline, _d, _c, _v in active:
            if owner != here or status in _FINAL:
                continue
            if status == "waiting" and wake is None:
                if deadline is not None:
                    self._at(deadline, run_id)
                continue
            self.wake(run_id)

    def _check_started(self) -> None:
        if not self.started:
            raise UsageError(f"the contracts service of node {self.node.name} is not running")


def _with_reason(status: RunStatus) -> RunStatus:
    """A running run's reason, from its steps (the record keeps it only for other states)."""
    active = [
        s for s in status.steps.values() if s.status in ("ready", "placing", "running", "retrying")
    ]
    parts = [
        f"{s.name}: {s.reason or s.status + (f' on {s.node}' if s.node else '')}"
        for s in active[:3]
    ]
    if len(active) > 3:
        parts.append(f"{len(active) - 3} more")
    return dataclasses.replace(status, reason="; ".join(parts) or status.reason)


def _outcome(status: str, outputs: Any, error: Any) -> dict[str, Any]:
    if status == "succeeded":
        return dict(outputs or {})
    raise error_of_record(error or {"type": "RunCancelled", "run_id": "?", "reason": status})


def _checked_inputs(graph: Graph, inputs: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(inputs, Mapping):
        raise InvalidInputs(graph.name, f"inputs must be a mapping, not {type(inputs).__name__}")
    unknown = sorted(set(inputs) - set(graph.inputs))
    if unknown:
        raise InvalidInputs(
            graph.name, f"unknown inputs {unknown} (it takes {sorted(graph.inputs)})"
        )
    values: dict[str, Any] = {}
    for name, spec in graph.inputs.items():
        if name in inputs:
            value = inputs[name]
            kind = spec.type
            if kind is not object and _is_class(kind) and not isinstance(value, kind):
                raise InvalidInputs(
                    graph.name,
                    f"input {name!r} must be {getattr(kind, '__name__', kind)}, "
                    f"not {type(value).__name__}",
                )
            values[name] = value
        elif spec.required:
            raise InvalidInputs(graph.name, f"missing input {name!r}")
        else:
            values[name] = spec.default
    return values


def _is_class(kind: Any) -> bool:
    if isinstance(kind, tuple):
        return all(isinstance(k, type) for k in kind)
    return isinstance(kind, type)


def service_of(node: Any = None) -> ContractsService:
    """The contracts service of ``node`` (default: the current node)."""
    if node is None:
        node = current_node.get(None)
        if node is None:
            raise UsageError(
                "no current node: pass node= or run inside 'async with ember.Node(...)'"
            )
    service = node.service("contracts") if hasattr(node, "service") else None
    if service is None:
        raise UsageError(f"node {getattr(node, 'name', node)} runs no contracts service")
    return service  # type: ignore[no-any-return]
