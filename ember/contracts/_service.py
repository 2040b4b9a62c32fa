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
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]

from .._errors import EmberError, UsageError
from .._tasks import OwnedTasks
from ..actors import Pid, ReplyHandle, Supervisor, child
from ..actors._node import current_node
from ..consensus import Cluster
from ..observability import AdminRequest, AdminRoute, Collector, Histogram
from ._cache import PureCache
from ._config import ContractsConfig
from ._contract import Contract, contract_class
from ._coordinator import RunCoordinator, RunSpec
from ._core import error_of_record
from ._durable import DurableStore
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
from ._graph import Graph, checked_inputs
from ._handle import RunHandle
from ._journal import LocalJournal, RaftJournal
from ._metrics import collect, summary
from ._placement import Candidate
from ._policy import CapabilityPolicy, offered_capabilities
from ._stats import ContractsStatistics
from ._status import RunStatus, RunSummary
from ._stephost import HOST_NAME, StepHost
from ._store import FINAL, RunStore

if TYPE_CHECKING:
    from .._services import ServiceNode

__all__ = ["ContractsService", "service_of"]

log = logging.getLogger("ember.contracts")

_ALIVE = ("alive", "suspect")


class _Entry:
    """This node's handle on one of its runs: its coordinator (None while it starts or while
    the run waits), the futures waiting for its end (they get the outcome, or None: look in
    the store again), and events that came while it was (re)starting."""

    __slots__ = ("events", "pid", "refresh", "resuming", "spec", "waiters")

    def __init__(self, spec: RunSpec | None) -> None:
        self.spec = spec
        self.pid: Pid | None = None
        self.resuming = False
        self.refresh = False
        """Events were delivered (elsewhere) while it started: reread them once it runs."""
        self.waiters: list[asyncio.Future[Any]] = []
        self.events: dict[str, Any] = {}

    def resolve(self, outcome: Any) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(outcome)
        self.waiters.clear()


class ContractsService:
    """The contracts service of ``node`` (``node.contracts``); see ``docs/contracts.md``."""

    def __init__(self, node: ServiceNode, config: ContractsConfig | None = None) -> None:
        self.node = node
        self._config = config or ContractsConfig()
        self.policy = self._config.policy
        """This node's deny list."""
        self.local = RunStore(self.config.keep_finished)
        """This node's local (not durable) runs."""
        self.local_journal = LocalJournal(self.local)
        self.raft_journal = RaftJournal(self)
        self.cache = PureCache(self.config.cache_size)
        self.load: dict[str, int] = {}
        """Steps this node's runs have running on each node."""
        self.stats = ContractsStatistics()
        self.run_spans: dict[str, Any] = {}
        """Trace spans of runs being launched, for their coordinators to take and end."""
        self.step_seconds = Histogram(
            "ember_contracts_step_seconds",
            "Duration of step attempts run in a worker or on another node (seconds).",
        )
        self.registry: dict[tuple[str, int], type[Contract]] = {}
        self._graphs: dict[tuple[str, int, str], Graph] = {}
        """Graphs resolved for runs and attempts, by name, version and shape."""
        self.durable: DurableStore | None = None
        """The durable store (None: no ``ContractsConfig.store``)."""
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
        self.hosts: dict[str, Pid] = {}
        """The step host of each node, as found (see ``_stephost``)."""
        self._host: Pid | None = None
        self.started = False

    @property
    def config(self) -> ContractsConfig:
        """The service's options; setting new ones applies to what starts and is placed from
        then on (the store's members are read at start only)."""
        return self._config

    @config.setter
    def config(self, config: ContractsConfig) -> None:
        if not isinstance(config, ContractsConfig):
            raise UsageError(f"config must be a ContractsConfig, not {config!r}")
        self._config = config
        self.policy = config.policy
        self._candidates = None
        self.cache.size = config.cache_size

    # --- life cycle ---

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._time = loop.time
        self._epoch = time.time() - loop.time()
        if self.node.mesh is not None:
            self._unlisten = self.node.on_member_event(self._on_member)
            self._publish_meta()
        elif self.node.dist is not None:
            self._unlisten = self.node.dist.add_node_listener(self._on_connection)
        if self.node.dist is not None:
            kernel = self.node.kernel
            self._host = kernel.in_context(kernel.spawn_nowait, StepHost, self)
            kernel.register(HOST_NAME, self._host)
        self.started = True
        if self.config.store is not None:
            self.durable = DurableStore(self, self.config.store)
            self._tasks.spawn(self.durable.sweep_loop())
            self._tasks.spawn(self.durable.recover())

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
        known = self._graphs.get((name, version, shape))
        if known is not None:
            return known
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
        self._graphs[(name, version, shape)] = graph
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
        values = checked_inputs(graph, inputs)
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
        # Claim the entry first: a wake (a sweep, a recovery) must not resume a run that this
        # start is about to coordinate.
        fresh = run_id not in self._entries
        entry = self._entries.setdefault(run_id, _Entry(None))
        if fresh:
            entry.resuming = True
        try:
            if durable:
                answer = await self.store().write(command, f"start:{run_id}", timeout=timeout)
            else:
                answer = self.local.apply_command(command)
        except BaseException:
            if fresh:
                self._drop(run_id, entry)
            raise
        created = answer[0] == "created"
        if fresh and not created:
            self._drop(run_id, entry)
        if answer[0] == "conflict":
            raise RunConflict(run_id, answer[1])
        if created:
            self.stats.runs_started += 1
            journal = self.raft_journal if durable else self.local_journal
            spec = RunSpec(run_id, graph, journal, durable, values, policy or CapabilityPolicy())
            try:
                await self._launch(spec)
            except BaseException:
                self._drop(run_id, entry)
                raise
        elif answer[1]["owner"] == self.node.name and answer[1]["status"] not in FINAL:
            self.wake(run_id)  # e.g. a retried start after this node restarted
        return RunHandle(self, run_id, graph.name, durable, created)

    def _drop(self, run_id: str, entry: _Entry) -> None:
        """Forget an entry that coordinates nothing (waiters look in the store again)."""
        entry.resuming = False
        if self._entries.get(run_id) is entry and entry.pid is None:
            del self._entries[run_id]
            entry.resolve(None)

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

    async def start_on(
        self,
        node: str,
        contract: type[Contract] | str,
        inputs: Mapping[str, Any],
        *,
        run_id: str | None = None,
        durable: bool | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> RunHandle:
        """Start a run whose owner (the node that coordinates it) is ``node``; ``contract``
        must be importable there by its reference."""
        if node == self.node.name:
            return await self.start_run(contract, inputs, run_id=run_id, durable=durable)
        graph = contract_class(contract).graph()
        if graph.ref is None:
            raise UsageError(f"contract {graph.name} is not importable by reference: start it here")
        request = {
            "contract": graph.ref,
            "inputs": dict(inputs),
            "run_id": run_id,
            "durable": durable,
        }
        answer = await self.node.kernel.call(
            (HOST_NAME, node), ("query", "start", request), timeout=timeout
        )
        run, name, is_durable, created = answer
        return RunHandle(self, run, name, bool(is_durable), bool(created))

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
        elif entry.pid is not None:
            raise UsageError(f"run {spec.run_id} has a coordinator on {self.node.name} already")
        else:
            entry.spec = spec
        entry.resuming = True
        # Started here, in the starter's context, so a traced caller's run joins its trace.
        span = self.node.tracing.start_span("contract.run", {"ember.run": spec.run_id})
        if span is not None:
            self.run_spans[spec.run_id] = span
        try:
            entry.pid = await Supervisor.start_child(await self._supervisor(), spec)
        finally:
            entry.resuming = False
            unclaimed = self.run_spans.pop(spec.run_id, None)  # no coordinator took it
            if unclaimed is not None:
                unclaimed.end()
        self.stats.coordinators += 1
        if entry.events:
            events, entry.events = entry.events, {}
            self.node.kernel.send(entry.pid, ("events", events))
        if entry.refresh:
            entry.refresh = False
            self._tasks.spawn(self._refresh(spec.run_id, entry.pid))

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

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` as one of this service's tasks."""
        self._tasks.spawn(coro)

    async def host_of(self, node: str) -> Pid:
        """The pid of ``node``'s step host (asked once, then cached)."""
        host = self.hosts.get(node)
        if host is not None:
            return host
        host = await self.node.kernel.call(
            (HOST_NAME, node), "pid", timeout=self.config.store_timeout
        )
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
            self.wake_at(deadline, spec.run_id)

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
        if self.config.capabilities is not None:
            mesh.set_meta_entry("capabilities", list(self.config.capabilities))
        if self.config.deny:
            mesh.set_meta_entry("contracts_deny", list(self.config.deny))

    def _on_connection(self, peer: str, up: bool) -> None:
        self._candidates = None

    def _on_member(self, event: Any) -> None:
        self._candidates = None
        durable = self.durable
        if durable is None:
            return
        if event.kind in ("joined", "alive"):
            durable.dead_since.pop(event.member.name, None)
        elif event.kind in ("failed", "left"):
            durable.sweep_now.set()

    def candidates(self) -> list[Candidate]:
        """The nodes steps may be placed on now, with what they offer and deny."""
        if self._candidates is not None:
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
                (await self.store().write(command, f"event:{event_id}", timeout=timeout), True)
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
            entry.refresh = True
            return
        if entry is None:
            entry = self._entries[run_id] = _Entry(None)
        entry.resuming = True
        self._tasks.spawn(self._resume(run_id, entry))

    async def _refresh(self, run_id: str, pid: Pid) -> None:
        """Tell a running coordinator what changed in its record: new events, or its end
        (cancelled from another node)."""
        rec = await self.read_record(run_id, durable=True)
        if rec is None:
            return
        if rec["status"] == "cancelled":
            reason = (rec.get("error") or {}).get("reason", "cancelled")
            self.node.kernel.send(pid, ("cancel", str(reason)))
            return
        events = {name: e["payload"] for name, e in rec["events"].items()}
        self.node.kernel.send(pid, ("events", events))

    async def _resume(self, run_id: str, entry: _Entry) -> None:
        try:
            local = run_id in self.local.runs
            rec = self.local.runs.get(run_id)
            if not local:
                rec = await self.read_record(run_id, durable=True)
            if rec is None or rec["status"] in FINAL or rec["owner"] != self.node.name:
                self._entries.pop(run_id, None)
                if rec is not None and rec["status"] in FINAL:
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
                    await self.store().write(
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
            self._drop(run_id, entry)
            raise

    def _wake_remote(self, owner: str, run_id: str) -> None:
        """Tell ``owner``'s contracts service to look at ``run_id`` (at most once; a lost
        message is made good by the store leader's sweep)."""
        with contextlib.suppress(EmberError):
            self.node.kernel.cast((HOST_NAME, owner), ("wake", run_id))

    def poke(self, node: str, run_id: str) -> None:
        """Wake run ``run_id`` on ``node`` (here, or through its step host)."""
        if node == self.node.name:
            self.wake(run_id)
        else:
            self._wake_remote(node, run_id)

    def wake_at(self, when: float, run_id: str) -> None:
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
        if self.durable is None:
            return None
        stored: dict[str, Any] | None = await self.durable.read(["run", run_id])
        return stored

    async def status(self, run_id: str, *, durable: bool | None = None) -> RunStatus:
        """Where run ``run_id`` stands; :class:`RunNotFound` if no store has it."""
        rec = await self.read_record(run_id, durable=durable)
        if rec is None:
            raise RunNotFound(run_id)
        status = RunStatus.of(rec)
        return status.with_running_reason() if status.status == "running" else status

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
        if self.durable is not None and durable is not False:
            found = await self.durable.read(key)
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
            if rec["status"] in FINAL or (rec["status"] == "unknown" and rec.get("error")):
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
            answer = await self.store().write(command, f"cancel:{run_id}:{uuid.uuid4().hex[:8]}")
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

    def answer_query(self, op: str, kwargs: dict[str, Any], handle: ReplyHandle) -> None:
        """Answer a ``runs`` or ``show`` query from another node (the CLI) with plain data."""

        async def answer() -> None:
            try:
                if op == "runs":
                    found = await self.runs(
                        contract=kwargs.get("contract"),
                        status=kwargs.get("status"),
                        limit=int(kwargs.get("limit") or 50),
                    )
                    value: Any = [_plain(dataclasses.asdict(s)) for s in found]
                    for item in value:
                        item["id"] = item.pop("run_id")
                        item["corr"] = item.pop("correlation")
                        item["waiting"] = item.pop("waiting_on")
                elif op == "start":
                    run = await self.start_run(
                        str(kwargs["contract"]),
                        kwargs.get("inputs") or {},
                        run_id=kwargs.get("run_id"),
                        durable=kwargs.get("durable"),
                    )
                    value = [run.run_id, run.contract, run.durable, run.created]
                elif op == "show":
                    rec = await self.read_record(str(kwargs["run_id"]))
                    if rec is None:
                        raise RunNotFound(str(kwargs["run_id"]))
                    value = _plain(rec)
                else:
                    raise UsageError(f"unknown contracts query {op!r}")
            except Exception as exc:
                handle.fail(exc)
            else:
                handle.reply(value)

        self._tasks.spawn(answer())

    def collectors(self) -> Iterable[Collector]:
        """The node's metrics of contracts (read at scrape time; see ``docs/operability.md``)."""
        return (lambda: collect(self),)

    def admin_summary(self) -> dict[str, Any]:
        """This node's line of contracts on the dashboard and in ``ember status``."""
        return summary(self)

    def admin_routes(self) -> Iterable[AdminRoute]:
        """``GET /api/v1/contracts/statistics``: every counter of this node's contracts."""

        async def statistics(req: AdminRequest) -> Any:
            return dataclasses.asdict(self.statistics())

        return (AdminRoute("GET", "/statistics", statistics, "every contracts counter"),)

    def statistics(self) -> ContractsStatistics:
        """This node's counters (a copy)."""
        stats = self.stats
        cache = self.cache
        stats.cache_hits, stats.cache_misses = cache.hits, cache.misses
        stats.cache_evictions, stats.cache_entries = cache.evictions, len(cache)
        return ContractsStatistics(**stats.as_dict())

    def observe_step(self, seconds: float) -> None:
        """Count one step attempt (its report came back after ``seconds``)."""
        self.stats.observe(seconds)
        self.step_seconds.observe(seconds)

    def runs_by_status(self) -> dict[str, int]:
        """This node's local runs by status (durable runs are counted by the store leader)."""
        out: dict[str, int] = {}
        for rec in self.local.runs.values():
            out[rec["status"]] = out.get(rec["status"], 0) + 1
        return out

    @property
    def cluster(self) -> Cluster | None:
        """A client handle on the durable store's Raft group (None without a store)."""
        return None if self.durable is None else self.durable.cluster

    def store(self) -> DurableStore:
        """The durable store; :class:`StoreUnavailable` if this node has none."""
        if self.durable is None:
            raise StoreUnavailable(f"node {self.node.name} has no contracts store")
        return self.durable

    def _check_started(self) -> None:
        if not self.started:
            raise UsageError(f"the contracts service of node {self.node.name} is not running")


def _plain(value: Any) -> Any:
    """``value`` as JSON data (what a step returned may be any object in a local run)."""
    return json.loads(json.dumps(value, default=repr))


def _outcome(status: str, outputs: Any, error: Any) -> dict[str, Any]:
    if status == "succeeded":
        return dict(outputs or {})
    raise error_of_record(error or {"type": "RunCancelled", "run_id": "?", "reason": status})


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
