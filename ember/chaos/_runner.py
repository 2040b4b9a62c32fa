"""The runner: one scenario on one driver, from start to verdict.

It starts the cluster and the KV group, runs the workloads while the nemesis injects the
scheduled faults, then the final phase: undo every fault (restart the killed, continue the
paused, heal the network), wait ``settle`` seconds, read every key. Then it stops the cluster
and runs the checkers on what it recorded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol

from .._errors import EmberError
from ._checkers import (
    CheckResult,
    Validity,
    check_availability,
    check_calls,
    check_contracts,
    check_linearizable,
    check_logs,
    check_lost_writes,
    check_pg_converged,
    check_rss,
    check_supervisors,
    check_unique_owners,
    overall,
)
from ._driver import Driver, DriverError
from ._history import History
from ._nemesis import Link, Step, cut_links, resolve_targets, schedule
from ._runs import ContractsWorkload
from ._scenario import FaultSpec, Scenario
from ._supervisors import SupervisorsWorkload
from ._workloads import (
    CallsWorkload,
    KVWorkload,
    NamesWorkload,
    PgWorkload,
    Processes,
    Workload,
)

__all__ = ["WORKLOADS_BY_KIND", "FaultRecord", "Progress", "RunResult", "Runner"]

_SAMPLE_EVERY = 1.0  # seconds between memory samples
MARGIN = 120.0
"""Seconds a step of the run may take past its own bound (a restart, a convergence wait)
before the run gives up on it: generous, for a loaded machine; a step past it is a hang."""

WORKLOADS_BY_KIND: Final[Mapping[str, type[Workload]]] = MappingProxyType(
    {
        "kv": KVWorkload,
        "names": NamesWorkload,
        "pg": PgWorkload,
        "calls": CallsWorkload,
        "supervisors": SupervisorsWorkload,
        "contracts": ContractsWorkload,
    }
)
"""The workload kinds the runner runs, and their clients."""


@dataclass
class FaultRecord:
    """One injected fault: when it started and was undone (None: still on), on which nodes."""

    fault: str
    targets: tuple[str, ...]
    start: float
    stop: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "targets": list(self.targets),
            "start": round(self.start, 6),
            "stop": None if self.stop is None else round(self.stop, 6),
            "detail": self.detail,
        }


class Progress(Protocol):
    """What a live display is told; called from the run's event loop."""

    def update(
        self, elapsed: float, total: float, tally: dict[str, int], faults: list[str]
    ) -> None:
        """The run is ``elapsed`` of ``total`` seconds in, with these outcomes and faults on."""


@dataclass
class RunResult:
    """Everything a run produced: the history, the faults, the checks and the verdict."""

    scenario: Scenario
    seed: int
    driver: dict[str, Any]
    history: History
    faults: list[FaultRecord]
    checks: list[CheckResult]
    phases: dict[str, float]
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def validity(self) -> Validity:
        return overall(self.checks)


class Runner:
    """Runs ``scenario`` on ``driver`` with ``seed``; :meth:`run` returns the result."""

    def __init__(
        self, scenario: Scenario, driver: Driver, seed: int, progress: Progress | None = None
    ) -> None:
        self.scenario = scenario
        self.driver = driver
        self.seed = seed
        self.progress = progress
        self.rng = random.Random(seed)
        self.history = History()
        self.faults: list[FaultRecord] = []
        self.phases: dict[str, float] = {}
        self.rss: dict[str, list[tuple[float, int]]] = {}
        self._t0 = 0.0
        self._killed: set[str] = set()
        self._paused: set[str] = set()
        self._cuts: dict[int, set[Link]] = {}
        self._undo: dict[int, tuple[FaultRecord, Callable[[], Awaitable[None]]]] = {}
        self._over = asyncio.Event()  # the workload phase ended: the nemesis stops
        self.views: dict[str, dict[str, Any]] = {}
        """Per names tier: the settled views, when they agreed, the bound (``settle_views``)."""
        """Per name tier, each node's view of the names after the final heal."""
        self.pg: list[dict[str, Any]] = []
        """What each pg workload saw of the groups after the final heal."""
        self.trees: list[dict[str, Any]] = []
        """What each supervisors workload saw of its trees after the final heal."""
        self._expected_logs: tuple[str, ...] = ()

    def clock(self) -> float:
        """Seconds since the workload phase began (the run's clock)."""
        return self.driver.now() - self._t0

    async def _sleep_until(self, t: float) -> bool:
        """Wait until ``t`` on the run's clock; False if the workload phase ended first."""
        delay = t - self.clock()
        if delay > 0 and not self._over.is_set():
            try:
                async with asyncio.timeout(delay):
                    await self._over.wait()
            except TimeoutError:
                pass
        return not self._over.is_set()

    # --- the run ---

    async def run(self) -> RunResult:
        s = self.scenario
        self.driver.check_supported()
        for spec in s.workloads:
            if spec.kind not in WORKLOADS_BY_KIND:
                raise DriverError(f"the {spec.kind} workload is not available yet")
        try:
            await self.driver.start()
            await self.driver.start_kv()
            await self.driver.wait_contracts_store()
            self._t0 = self.driver.now()
            ids = Processes()
            workloads = [
                WORKLOADS_BY_KIND[spec.kind](
                    spec,
                    self.driver,
                    self.history,
                    self.clock,
                    random.Random(self.rng.getrandbits(64)),
                    ids,
                )
                for spec in s.workloads
            ]
            self._expected_logs = tuple(p for w in workloads for p in w.expected_logs)
            steps = schedule(s, random.Random(self.rng.getrandbits(64)))
            self.phases["workload_start"] = 0.0
            done = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sample(done))
                tg.create_task(self._report(done))
                nemesis = tg.create_task(self._nemesis(steps))
                await self.driver.bounded(
                    "the workload phase", self._workloads(workloads), s.duration + MARGIN
                )
                self.phases["workload_end"] = self.clock()
                self._over.set()
                await self.driver.bounded("the nemesis's last fault", nemesis, MARGIN)
                await self.driver.bounded(
                    "the final heal", self._heal_all(), MARGIN * (1 + len(self._undo))
                )
                self.phases["healed"] = self.clock()
                await asyncio.sleep(s.settle)
                self.phases["settled"] = self.clock()
                for w in workloads:
                    await self._final(w)
                self.phases["end"] = self.clock()
                done.set()
        finally:
            await self.driver.stop()
        logs = self.driver.logs()
        return RunResult(
            s, self.seed, self.driver.describe(), self.history, self.faults,
            self._check(logs), self.phases, self.rss, logs,
        )  # fmt: skip

    async def _workloads(self, workloads: list[Workload]) -> None:
        async with asyncio.TaskGroup() as clients:
            for w in workloads:
                clients.create_task(w.run(until=w.spec.duration))

    async def _final(self, w: Workload) -> None:
        """Workload ``w``'s part of the final phase (its final reads, then what its checker
        needs after the heal), each step bounded: one that cannot end makes the run unknown."""
        s, d = self.scenario, self.driver
        healed = self.phases["healed"]
        within = max(30.0, s.settle * 4)
        kind = w.spec.kind
        await d.bounded(f"the {kind} final reads", w.final_reads(within=within), within + MARGIN)
        if isinstance(w, NamesWorkload):
            within = s.checks.names_within
            views = w.settle_views(within, healed)
            await d.bounded(
                "the names' views", self._keep(views, self.views, w.spec.tier), within + MARGIN
            )
        elif isinstance(w, PgWorkload):
            within = s.checks.pg_within
            await d.bounded(
                "the pg views", self._append(w.converge(within, healed), self.pg), within + MARGIN
            )
        elif isinstance(w, SupervisorsWorkload):
            within = s.checks.supervisors_within
            trees = w.final_strength(within, healed)
            await d.bounded(
                "the supervision trees", self._append(trees, self.trees), within + MARGIN
            )
        elif isinstance(w, ContractsWorkload):
            within = s.checks.contracts_within
            await d.bounded("the contract runs", w.final_runs(within), within + MARGIN)

    @staticmethod
    async def _keep(step: Awaitable[Any], into: dict[str, Any], key: str) -> None:
        into[key] = await step

    @staticmethod
    async def _append(step: Awaitable[Any], into: list[Any]) -> None:
        into.append(await step)

    def _check(self, logs: dict[str, list[str]]) -> list[CheckResult]:
        c = self.scenario.checks
        out: list[CheckResult] = []
        if self.driver.unfinished:
            summary = "; ".join(self.driver.unfinished)
            figures = {"unfinished": list(self.driver.unfinished)}
            out.append(CheckResult("completed", Validity.UNKNOWN, summary, figures))
        if c.linearizable:
            out.append(check_linearizable(self.history, budget=c.budget))
        if c.lost_writes:
            out.append(check_lost_writes(self.history))
        out.append(
            check_availability(
                self.history, 0.0, self.phases["workload_end"], max_gap=c.max_unavailable
            )
        )
        faults = [f.as_dict() for f in self.faults]
        if c.unique_names:
            for tier, seen in self.views.items():
                # A fault's releases trail it by up to the settle time (failure detection).
                out.append(
                    check_unique_owners(
                        self.history,
                        seen["views"],
                        faults,
                        tier,
                        self.scenario.settle,
                        converged_after=seen["converged_after"],
                        within=seen["within"],
                    )
                )
        if any(w.kind == "calls" for w in self.scenario.workloads):
            out.append(check_calls(self.history))
        if c.pg_converge:
            out.extend(check_pg_converged(observed) for observed in self.pg)
        if c.supervisors:
            out.extend(check_supervisors(self.history, trees, faults) for trees in self.trees)
        if c.contracts and any(w.kind == "contracts" for w in self.scenario.workloads):
            out.append(check_contracts(self.history, faults))
        if c.rss_limit_mb is not None:
            out.append(check_rss(self.rss, c.rss_limit_mb))
        if c.logs:
            out.append(check_logs(logs, (*c.logs_allow, *self._expected_logs)))
        return out

    async def _sample(self, done: asyncio.Event) -> None:
        while not done.is_set():
            now = self.clock()
            for name, rss in self.driver.rss().items():
                if rss:
                    self.rss.setdefault(name, []).append((now, rss))
            try:
                async with asyncio.timeout(_SAMPLE_EVERY):
                    await done.wait()
            except TimeoutError:
                pass

    async def _report(self, done: asyncio.Event) -> None:
        if self.progress is None:
            return
        total = self.scenario.duration + self.scenario.settle
        while not done.is_set():
            on = [f"{r.fault} {','.join(r.targets)}" for r, _ in self._undo.values()]
            self.progress.update(self.clock(), total, dict(self.history.tally), on)
            try:
                async with asyncio.timeout(0.25):
                    await done.wait()
            except TimeoutError:
                pass

    # --- the nemesis ---

    async def _nemesis(self, steps: list[Step]) -> None:
        """Start each step's fault at its time and undo it at its stop, until the workload
        phase ends (what is still on then is undone by the final phase)."""
        async with asyncio.TaskGroup() as tg:
            for n, step in enumerate(steps):
                if not await self._sleep_until(step.start):
                    return
                try:
                    started = await self._start_fault(n, step.fault)
                except (EmberError, TimeoutError) as exc:  # the run goes on; the report says so
                    self.driver.notes.append(
                        f"{step.fault.fault} at {self.clock():.2f} s failed: {exc}"
                    )
                    continue
                if started:
                    tg.create_task(self._stop_later(n, step.stop))

    async def _stop_later(self, n: int, at: float) -> None:
        if await self._sleep_until(at):
            await self._stop_fault(n)

    async def _stop_fault(self, n: int) -> None:
        entry = self._undo.pop(n, None)
        if entry is not None:
            record, undo = entry
            try:
                await undo()
            except (EmberError, TimeoutError) as exc:
                self.driver.notes.append(f"undoing {record.fault} failed: {exc}")
            record.stop = self.clock()

    async def _heal_all(self) -> None:
        """The final phase's start: undo every fault still on, in the order they began."""
        for n in sorted(self._undo):
            await self._stop_fault(n)

    async def _targets(self, f: FaultSpec, exclude: set[str]) -> tuple[str, ...]:
        live = [n for n in self.driver.live() if n not in exclude]
        leader = None
        if f.target in ("leader", "followers"):
            leader = await self.driver.leader(group=f.group)
        return resolve_targets(f.target, live, leader, self.rng)

    async def _start_fault(self, n: int, f: FaultSpec) -> bool:
        """Inject fault ``f`` (step ``n``); record it and how to undo it. False if it found
        no target."""
        d = self.driver
        busy = self._killed | self._paused
        targets = await self._targets(f, busy)
        detail = ""
        undo: Callable[[], Awaitable[None]]
        if f.fault in ("kill", "restart"):
            if not targets:
                return False
            for t in targets:
                await d.kill(t)
                self._killed.add(t)

            async def undo() -> None:
                for t in targets:
                    await d.restart(t)
                    self._killed.discard(t)

            if f.fault == "restart":  # kill -9 and start again at once
                record = FaultRecord(f.fault, targets, self.clock())
                self.faults.append(record)
                await undo()
                record.stop = self.clock()
                return False
        elif f.fault == "pause":
            if not targets:
                return False
            for t in targets:
                await d.pause(t)
                self._paused.add(t)

            async def undo() -> None:
                for t in targets:
                    await d.resume(t)
                    self._paused.discard(t)

        elif f.fault == "partition":
            nodes = [x for x in d.names if x not in self._killed]
            links = cut_links(f.mode, nodes, targets, self.rng)
            if not links:
                return False
            self._cuts[n] = links
            await d.cut(set().union(*self._cuts.values()))
            detail = f"{f.mode}: " + " ".join(sorted("-".join(sorted(link)) for link in links))

            async def undo() -> None:
                self._cuts.pop(n, None)
                await d.cut(set().union(*self._cuts.values()) if self._cuts else set())

        elif f.fault in ("delay", "loss"):
            delay = f.delay if f.fault == "delay" else None
            loss = f.probability if f.fault == "loss" else None
            await d.network_faults(targets, delay, loss)
            detail = f"delay {delay[0]}-{delay[1]} s" if delay else f"loss {loss:.0%}"

            async def undo() -> None:
                await d.network_faults(targets, None, None)

        elif f.fault == "slow-disk":
            await d.disk_faults(targets, f.latency)
            detail = f"+{f.latency} s per save"

            async def undo() -> None:
                await d.disk_faults(targets, None)

        elif f.fault == "failing-disk":
            await d.disk_faults(targets, None, f.probability)
            detail = f"{f.probability:.0%} of saves fail"

            async def undo() -> None:  # a new disk: the node restarts on it, from its data
                await d.disk_faults(targets, None)
                for t in targets:
                    if t in d.live():
                        await d.kill(t)
                        await d.restart(t)

        elif f.fault == "add-node":
            added = await d.add_node()
            targets = (added,)
            detail = f"{added} joins the cluster and the KV group"

            async def undo() -> None:
                await d.retire_node(added)

        elif f.fault == "remove-node":
            if not targets:
                return False
            for t in targets:
                await d.remove_member(t)
            detail = "member removed from the KV group"

            async def undo() -> None:
                for t in targets:
                    await d.readd_member(t)

        elif f.fault == "clock-skew":
            await d.clock_faults(targets, f.rate)
            detail = f"clock at {f.rate}x"

            async def undo() -> None:
                await d.clock_faults(targets, None)

        else:
            raise DriverError(f"fault {f.fault!r} is not implemented by the runner yet")
        record = FaultRecord(f.fault, targets, self.clock(), detail=detail)
        self.faults.append(record)
        self._undo[n] = (record, undo)
        return True
