"""The supervisors workload: a supervision tree on every node, its children crashed and killed
during the run, and after the heal every tree is polled until it is back to full strength.

Each tree (:func:`ember.chaos._probe.tree_children`) is started by a remote spawn from the
client node and registered on its node as ``ember.chaos.tree``; every request to it uses the
supervisor verbs across nodes (``Supervisor.which_children`` / ``count_children`` on
``(name, node)`` and on the nested supervisor's remote pid), as an operator's tool would.

Operations (``key`` the node, ``value`` the child's path, ``w1`` or ``sub/s2``):

- ``start_tree``: spawn the tree; ``ok`` with its pid. Done for every node when the workload
  starts, and again for a node whose tree is gone (after a kill of the node, it restarts
  without it, as a node restarts without what a remote peer spawned there).
- ``crash``: the child raises (``InjectedCrash``); ``kill``: an untrappable exit signal to the
  child (a worker or the nested supervisor); ``ok`` once the signal is sent to the pid its
  supervisor listed, ``fail`` when its supervisor listed it not running, or when the tree is
  gone (``error: NoProc``); else ``info``.
- ``count``: ``count_children`` of the top supervisor (a read: ``fail`` on any error).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from .._errors import EmberError, NoProc, UsageError
from ..actors import ChildInfo, Pid, Supervisor
from ..actors._node import current_node
from ._checkers import missing_children
from ._history import EventType
from ._probe import (
    INJECTED_CRASH,
    SUPERVISOR_REF,
    TREE,
    TREE_INTENSITY,
    TREE_PERIOD,
    expected_tree,
    tree_children,
)
from ._workloads import Workload

__all__ = ["SupervisorsWorkload"]

T = TypeVar("T")

_POLL = 0.2  # seconds between polls of the trees after the heal


class _NotRunning(Exception):
    """The child's supervisor lists it without a pid (stopped, or being restarted)."""


class SupervisorsWorkload(Workload):
    """A tree on every node; its clients crash, kill and count children (see the module)."""

    prefix = "tree-"
    expected_logs: ClassVar[tuple[str, ...]] = (INJECTED_CRASH,)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._locks: dict[str, asyncio.Lock] = {}
        tree = expected_tree()
        self._paths = [*tree[""], *(f"sub/{c}" for c in tree["sub"])]
        self._workers = [p for p in self._paths if p != "sub"]

    async def _client_side(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` as the client node: the supervisor verbs find their node by context."""
        token = current_node.set(self.driver.client)
        try:
            return await fn()
        finally:
            current_node.reset(token)

    async def _which(self, sup: Any) -> list[ChildInfo]:
        return await self._client_side(lambda: Supervisor.which_children(sup))

    async def run(self, until: float) -> None:
        for node in self.driver.live():
            await self._start_tree(node)
        await super().run(until)

    async def _start_tree(self, node: str) -> bool:
        """Spawn the tree on ``node`` unless one answers there; record it. True if one runs."""
        lock = self._locks.setdefault(node, asyncio.Lock())
        async with lock:
            try:
                async with asyncio.timeout(self.spec.timeout):
                    await self._client_side(lambda: Supervisor.count_children((TREE, node)))
                return True  # another client started it meanwhile
            except NoProc:
                pass
            except (EmberError, TimeoutError, OSError):
                return False
            process = self.ids.process()
            invoke = self.history.invoke(process, "start_tree", node, None, self.clock())
            try:
                async with asyncio.timeout(self.spec.timeout * 2 + 1.0):
                    pid = await self.driver.client.spawn(
                        SUPERVISOR_REF, tree_children(), "one_for_one", TREE_INTENSITY,
                        TREE_PERIOD, name=TREE, on=node,
                    )  # fmt: skip
            except UsageError:
                raise
            except (EmberError, TimeoutError, OSError) as exc:
                error = type(exc).__name__
                self.history.complete(invoke, "info", None, self.clock(), error=error)
                return False
            self.history.complete(invoke, "ok", str(pid), self.clock(), node=node)
            return True

    async def _child(self, node: str, path: str) -> Pid:
        """The pid of the child at ``path`` of ``node``'s tree, as its supervisor lists it."""
        sup: Any = (TREE, node)
        for part in path.split("/"):
            try:
                rows = await self._which(sup)
            except NoProc:
                if isinstance(sup, Pid):  # a nested supervisor exited since it was listed
                    raise _NotRunning(part) from None
                raise  # the tree itself is gone
            row = next((r for r in rows if r.id == part), None)
            if row is None or row.pid is None:
                raise _NotRunning(part)
            sup = row.pid
        assert isinstance(sup, Pid)
        return sup

    async def operate(
        self, process: int, f: str, key: str, rng: random.Random, memory: dict[str, Any]
    ) -> EventType:
        node = self._node(rng)
        path = rng.choice(self._workers if f == "crash" else self._paths)
        client = self.driver.client
        invoke = self.history.invoke(process, f, node, None if f == "count" else path, self.clock())
        result: Any
        try:
            async with asyncio.timeout(self.spec.timeout):
                if f == "count":
                    result = await self._client_side(
                        lambda: Supervisor.count_children((TREE, node))
                    )
                else:
                    pid = await self._child(node, path)
                    if f == "crash":
                        client.send(pid, ("crash",))
                    else:
                        client.exit(pid, "kill")
                    result = str(pid)
        except UsageError:
            raise
        except NoProc as exc:
            # No tree answers under its name there: it is gone. The checker decides whether a
            # fault explains it; the workload starts a new one.
            self._failed(invoke, "fail", exc)
            await self._start_tree(node)
            return "fail"
        except _NotRunning:
            self.history.complete(invoke, "fail", None, self.clock(), error="NotRunning")
            return "fail"
        except (EmberError, TimeoutError, OSError) as exc:
            outcome: EventType = "fail" if f == "count" else "info"
            return self._failed(invoke, outcome, exc)
        self.history.complete(invoke, "ok", result, self.clock(), node=node)
        return "ok"

    async def _snapshot(self, node: str) -> dict[str, Any]:
        """What ``node``'s tree runs now: each supervisor's children as ``[id, pid or None]``
        and the top's counts, or the error that answered instead."""
        try:
            async with asyncio.timeout(self.spec.timeout):
                top = await self._which((TREE, node))
                counts = await self._client_side(lambda: Supervisor.count_children((TREE, node)))
                out: dict[str, Any] = {
                    "": [[str(r.id), None if r.pid is None else str(r.pid)] for r in top],
                    "counts": counts,
                }
                sub = next((r.pid for r in top if r.id == "sub"), None)
                if sub is not None:
                    rows = await self._which(sub)
                    out["sub"] = [[str(r.id), None if r.pid is None else str(r.pid)] for r in rows]
                return out
        except (EmberError, TimeoutError, OSError) as exc:
            return {"error": type(exc).__name__}

    async def final_strength(self, within: float, since: float) -> dict[str, Any]:
        """Poll every live node's tree until all are at full strength or ``within`` seconds
        after ``since`` (the heal) pass; a node whose tree is gone gets a new one first. Returns
        the last snapshots, the expected children and when they were first all full."""
        expected = expected_tree()
        while True:
            trees: dict[str, dict[str, Any]] = {}
            for node in self.driver.live():
                snap = await self._snapshot(node)
                if snap.get("error") == "NoProc" and await self._start_tree(node):
                    snap = await self._snapshot(node)
                trees[node] = snap
            full = bool(trees) and not any(missing_children(t, expected) for t in trees.values())
            elapsed = self.clock() - since
            if full or elapsed >= within:
                return {
                    "expected": expected,
                    "trees": trees,
                    "full_after": round(elapsed, 3) if full else None,
                    "within": within,
                }
            await asyncio.sleep(_POLL)
