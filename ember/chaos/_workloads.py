"""Workloads: clients that issue operations against the cluster and record each one in the
history, Jepsen's way.

A client records ``invoke``, performs the operation through the public API, and records
``ok`` with the result, ``fail`` when the operation certainly did not happen (the error says
so: ``NoLeader``, ``NotLeader``, a failed read) or ``info`` when it may have (a timeout, a lost
leader, a lost connection). After ``info`` the client continues under a new process id, so
each process's operations stay sequential and an unknown outcome stays open to the end.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from typing import Any, ClassVar

from .._errors import EmberError, NameTaken, NoProc, UnknownName, UsageError
from ..consensus import CommandFailed, NoLeader, NotLeader
from ..registry import TierUnavailable
from ._history import Event, EventType, History
from ._scenario import WorkloadSpec

__all__ = [
    "CallsWorkload",
    "KVWorkload",
    "NamesWorkload",
    "PgWorkload",
    "Processes",
    "Workload",
    "classify",
]

# Errors that prove a write was not applied (docs/consensus.md, "Errors").
_NOT_WRITTEN = (NoLeader, NotLeader, CommandFailed)


def classify(f: str, exc: BaseException) -> EventType:
    """``fail`` if ``exc`` proves operation ``f`` did not happen (or ``f`` changes nothing),
    ``info`` if it may have."""
    if f in ("read", "final_read"):
        return "fail"  # a read changes nothing: whether it ran does not matter
    return "fail" if isinstance(exc, _NOT_WRITTEN) else "info"


class Processes:
    """Hands out process ids, unique across the run's workloads, and unique written values."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._values = itertools.count(1)

    def process(self) -> int:
        return next(self._ids)

    def value(self) -> int:
        return next(self._values)


class Workload:
    """What the workloads share: ``spec.clients`` clients, each issuing one operation at a
    time at ``spec.rate`` operations per second in all (on the run's ``clock``), a new
    process id after every ``info``, and holder processes on the cluster's nodes."""

    prefix: ClassVar[str] = "key-"
    """The keys are ``<prefix>0``, ``<prefix>1``..."""
    expected_logs: ClassVar[tuple[str, ...]] = ()
    """Regular expressions of the node log lines this workload causes on purpose (a crash it
    injects): the log check accepts them."""

    def __init__(  # noqa: PLR0917 - one of each, in the order the runner has them
        self,
        spec: WorkloadSpec,
        driver: Any,
        history: History,
        clock: Callable[[], float],
        rng: random.Random,
        ids: Processes,
    ) -> None:
        self.spec = spec
        self.driver = driver
        self.history = history
        self.clock = clock
        self.rng = rng
        self.ids = ids
        self.keys = [f"{self.prefix}{i}" for i in range(spec.keys)]
        self._ops = list(spec.mix)
        self._weights = [spec.mix[o] for o in self._ops]
        self._holders: dict[str, Any] = {}

    async def run(self, until: float) -> None:
        """Run every client until ``until`` (on the run's clock)."""
        seeds = [self.rng.getrandbits(64) for _ in range(self.spec.clients)]
        async with asyncio.TaskGroup() as tg:
            for seed in seeds:
                tg.create_task(self._client(random.Random(seed), until))

    async def _client(self, rng: random.Random, until: float) -> None:
        process = self.ids.process()
        memory: dict[str, Any] = {}  # what this client saw, for operations that need it
        pause = self.spec.clients / self.spec.rate if self.spec.rate else 0.0
        while self.clock() < until:
            if pause:
                await asyncio.sleep(pause * rng.uniform(0.5, 1.5))
                if self.clock() >= until:
                    return
            f = rng.choices(self._ops, self._weights)[0]
            if await self.operate(process, f, rng.choice(self.keys), rng, memory) == "info":
                process = self.ids.process()

    async def operate(
        self, process: int, f: str, key: str, rng: random.Random, memory: dict[str, Any]
    ) -> EventType:
        """Perform and record one operation ``f`` on ``key``; return its outcome."""
        raise NotImplementedError

    async def final_reads(self, within: float) -> None:
        """The final phase's reads, if the workload has any (default: none)."""

    async def _holder(self, node: str, fresh: bool = False) -> Any:
        """A holder process on ``node`` (spawned on first use, or again after it died)."""
        from ._probe import Holder

        pid = self._holders.get(node)
        if pid is None or fresh:
            pid = self._holders[node] = await self.driver.client.spawn(Holder, on=node)
        return pid

    def _node(self, rng: random.Random) -> str:
        return str(rng.choice(self.driver.live() or self.driver.names))

    def _failed(self, invoke: Event, outcome: EventType, exc: BaseException) -> EventType:
        """Complete ``invoke`` as ``outcome`` because of ``exc`` (its type is the error)."""
        self.history.complete(invoke, outcome, None, self.clock(), error=type(exc).__name__)
        return outcome


class KVWorkload(Workload):
    """Reads, writes and compare-and-sets on the KV group's keys (unique written values; a cas
    mostly expects the value its client last saw)."""

    prefix = "k"

    async def operate(
        self, process: int, f: str, key: str, rng: random.Random, memory: dict[str, Any]
    ) -> EventType:
        if f == "read":
            value: Any = None
        elif f == "write":
            value = self.ids.value()
        else:
            value = (memory.get(key) if rng.random() < 0.8 else None, self.ids.value())
        outcome, result = await self._perform(process, f, key, value)
        if outcome == "ok" and f == "read":
            memory[key] = result
        elif outcome == "ok" and (f == "write" or result):
            memory[key] = value if f == "write" else value[1]
        return outcome

    async def _perform(self, process: int, f: str, key: str, value: Any) -> tuple[EventType, Any]:
        """Invoke, perform and complete one operation; return its outcome and result."""
        cluster = self.driver.kv
        invoke = self.history.invoke(process, f, key, value, self.clock())
        timeout = self.spec.timeout
        try:
            async with asyncio.timeout(timeout * 2 + 1.0):  # the API bounds it; this is a guard
                if f in ("read", "final_read"):
                    result = await cluster.read(key, timeout=timeout)
                elif f == "write":
                    await cluster.write({"key": key, "value": value}, timeout=timeout)
                    result = None
                else:
                    old, new = value
                    command = {"op": "cas", "key": key, "old": old, "new": new}
                    result = bool(await cluster.write(command, timeout=timeout))
        except UsageError:
            raise  # a bug of the runner, not an outcome
        except (EmberError, TimeoutError, OSError) as exc:
            outcome = classify(f, exc)
            self.history.complete(invoke, outcome, None, self.clock(), error=type(exc).__name__)
            return outcome, None
        self.history.complete(invoke, "ok", result, self.clock())
        return "ok", result

    async def final_reads(self, within: float) -> None:
        """Read every key once successfully (retrying failed reads), for at most ``within``
        seconds in all."""
        deadline = self.clock() + within
        process = self.ids.process()
        for key in self.keys:
            while self.clock() < deadline:
                outcome, _ = await self._perform(process, "final_read", key, None)
                if outcome == "ok":
                    break
                await asyncio.sleep(0.2)


class NamesWorkload(Workload):
    """Registrations, releases and lookups of ``spec.keys`` global names in ``spec.tier``, for
    holder processes on every node of the cluster, so that during a partition both sides try
    to take the same name (split-brain attempts).

    ``register`` completes ``ok`` with the fencing token (None for eventual names), ``fail``
    with ``NameTaken`` (the value is the holder), ``TierUnavailable`` or a dead holder, or
    ``info``; ``unregister`` and ``whereis`` likewise. After the final heal,
    :meth:`settle_views` polls every node's view (:meth:`final_views`: which process it sees
    under each name) until they agree.
    """

    @property
    def prefix(self) -> str:  # type: ignore[override]
        return f"{self.spec.tier}-"  # each tier its own names

    async def operate(
        self, process: int, f: str, key: str, rng: random.Random, memory: dict[str, Any]
    ) -> EventType:
        return await self._perform(process, f, key, self._node(rng))

    async def _perform(self, process: int, f: str, name: str, node: str) -> EventType:
        names = self.driver.client.names
        tier = self.spec.tier
        timeout = self.spec.timeout
        value: Any = node if f == "register" else None
        invoke = self.history.invoke(process, f, name, value, self.clock())
        try:
            async with asyncio.timeout(timeout * 2 + 1.0):
                if f == "register":
                    holder = await self._holder(node)
                    try:
                        token = await names.register(name, holder, tier, timeout=timeout)
                    except NoProc:
                        holder = await self._holder(node, fresh=True)
                        token = await names.register(name, holder, tier, timeout=timeout)
                    result: Any = [str(holder), token]
                elif f == "unregister":
                    await names.unregister(name, tier, timeout=timeout)
                    result = None
                elif tier == "consistent":
                    pid = await names.whereis(name, tier, consistency="linearizable")
                    result = None if pid is None else str(pid)
                else:
                    pid = names.whereis(name, tier)
                    result = None if pid is None else str(pid)
        except UsageError:
            raise
        except NameTaken as exc:
            self.history.complete(invoke, "fail", str(exc.owner), self.clock(), error="NameTaken")
            return "fail"
        except (UnknownName, NoProc, TierUnavailable) as exc:
            return self._failed(invoke, "fail", exc)
        except (EmberError, TimeoutError, OSError) as exc:
            outcome: EventType = "fail" if f == "whereis" else "info"
            return self._failed(invoke, outcome, exc)
        self.history.complete(invoke, "ok", result, self.clock(), node=node)
        return "ok"

    async def settle_views(self, within: float, since: float) -> dict[str, Any]:
        """Poll every node's view until all agree on every name or ``within`` seconds after
        ``since`` (the heal) pass; the last views, and when after ``since`` they were first
        seen to agree (an upper bound of the convergence time; None: they did not).

        Eventual names converge once every member sees the others alive again (the mesh
        re-forms within a reconnect interval of a heal) and anti-entropy has run, so one look
        at a fixed moment would judge the failure detector's timing on a loaded machine."""
        while True:
            views = await self.final_views()
            owners = [{view.get(name) for view in views.values()} for name in self.keys]
            agreed = bool(views) and all(len(seen) == 1 for seen in owners)
            elapsed = self.clock() - since
            if agreed or elapsed >= within:
                converged = round(elapsed, 3) if agreed else None
                return {"views": views, "converged_after": converged, "within": within}
            await asyncio.sleep(0.2)

    async def final_views(self, within: float = 10.0) -> dict[str, dict[str, str | None]]:
        """Every live node's view: name -> the holder it sees (as text) or None."""
        from ._probe import Holder

        client = self.driver.client
        views: dict[str, dict[str, str | None]] = {}
        for node in [*self.driver.live(), client.name]:
            try:
                async with asyncio.timeout(within):
                    probe = await client.spawn(Holder, on=node) if node != client.name else None
                    if probe is None:
                        seen = [client.names.whereis(n, self.spec.tier) for n in self.keys]
                        answer = [None if p is None else str(p) for p in seen]
                    else:
                        answer = await client.call(
                            probe, ("view", self.keys, self.spec.tier), timeout=within
                        )
            except (EmberError, TimeoutError):
                continue
            views[node] = dict(zip(self.keys, answer, strict=True))
        return views


class PgWorkload(Workload):
    """Joins, leaves and member lookups of ``spec.keys`` process groups by holder processes
    on every node (each op goes to a random node's holder). After the final heal,
    :meth:`converge` polls every node's view of every group until they are all equal."""

    prefix = "group-"

    async def operate(
        self, process: int, f: str, key: str, rng: random.Random, memory: dict[str, Any]
    ) -> EventType:
        return await self._perform(process, f, key, self._node(rng))

    async def _perform(self, process: int, f: str, group: str, node: str) -> EventType:
        client = self.driver.client
        timeout = self.spec.timeout
        invoke = self.history.invoke(process, f, group, node, self.clock())
        try:
            async with asyncio.timeout(timeout * 2 + 1.0):
                holder = await self._holder(node)
                if f == "members":
                    answer = await client.call(holder, ("pg_view", [group], False), timeout=timeout)
                    result: Any = answer[0]
                else:
                    result = await client.call(holder, ("pg", f, group), timeout=timeout)
        except UsageError:
            raise
        except NoProc as exc:  # the holder (or its node) is gone: joins of it went with it
            self._holders.pop(node, None)
            return self._failed(invoke, "fail", exc)
        except (EmberError, TimeoutError, OSError) as exc:
            outcome: EventType = "fail" if f == "members" else "info"
            return self._failed(invoke, outcome, exc)
        self.history.complete(invoke, "ok", result, self.clock(), node=node)
        return "ok"

    async def _views(self, local: bool) -> dict[str, list[list[str]]]:
        from ._probe import Holder

        client = self.driver.client
        out: dict[str, list[list[str]]] = {}
        for node in self.driver.live():
            try:
                async with asyncio.timeout(self.spec.timeout):
                    probe = await client.spawn(Holder, on=node)
                    out[node] = await client.call(
                        probe, ("pg_view", self.keys, local), timeout=self.spec.timeout
                    )
            except (EmberError, TimeoutError):
                continue
        return out

    async def converge(self, within: float, since: float) -> dict[str, Any]:
        """Poll every node's views until they agree (and match the union of what each node
        holds locally) or ``within`` seconds after ``since`` (the heal) pass; returns the last
        views, the local truth and when, after ``since``, they were first seen to agree (an
        upper bound of the convergence time; None: they did not)."""
        start = since
        while True:
            views = await self._views(local=False)
            local = await self._views(local=True)
            truth = [
                sorted(p for node in local for p in local[node][i]) for i in range(len(self.keys))
            ]
            agreed = bool(views) and all(v == truth for v in views.values())
            elapsed = self.clock() - start
            if agreed or elapsed >= within:
                return {
                    "groups": self.keys,
                    "views": views,
                    "truth": truth,
                    "converged_after": round(elapsed, 3) if agreed else None,
                    "within": within,
                }
            await asyncio.sleep(0.2)


class CallsWorkload(Workload):
    """Plain actor calls: each client calls the holder of a random node with a unique value,
    which comes back with the node's name (``ok``); a dead holder or node is ``fail``, a
    timeout ``info``. Checked by ``calls_answered``: every answer is its own call's."""

    prefix = "node-"

    async def operate(
        self, process: int, f: str, key: str, rng: random.Random, memory: dict[str, Any]
    ) -> EventType:
        node = self._node(rng)
        value = self.ids.value()
        invoke = self.history.invoke(process, "call", node, value, self.clock())
        timeout = self.spec.timeout
        try:
            async with asyncio.timeout(timeout * 2 + 1.0):
                holder = await self._holder(node)
                answer = await self.driver.client.call(holder, ("echo", value), timeout=timeout)
        except UsageError:
            raise
        except NoProc as exc:
            self._holders.pop(node, None)
            return self._failed(invoke, "fail", exc)
        except (EmberError, TimeoutError, OSError) as exc:
            return self._failed(invoke, "info", exc)
        self.history.complete(invoke, "ok", list(answer), self.clock(), node=node)
        return "ok"
