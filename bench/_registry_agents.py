"""What the registry and pg benchmarks share: the actors they spawn on node processes to see,
with the wall clock of the machine (every process of a run is on one host), when a name or a
group member arrives, and a nearest-rank percentile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ember
from ember.registry import GroupEvent


async def processes(
    n: int, client: str, *, registry_args: tuple[str, ...], registry: Any
) -> tuple[Any, Any]:
    """``n`` node processes on loopback (``ember node start``, seeds, the LAN mesh profile,
    ``registry_args`` for their registry) and a node of this process, ``client``, in their
    mesh with ``registry`` (a ``RegistryConfig``); returns the cluster and that node."""
    import secrets
    import tempfile
    from pathlib import Path

    from ember.testing._localcluster import LocalCluster

    procs = LocalCluster(
        n,
        workdir=Path(tempfile.mkdtemp(prefix="bench-registry-")),
        discovery="seeds",
        mesh_profile="lan",
        cluster=f"b{secrets.token_hex(4)}",
        extra_args=registry_args,
        ready_timeout=60,
    )
    await procs.start()
    try:
        node = await procs.client(client, 120.0, mesh="lan", registry=registry)
    except BaseException:
        await procs.stop()
        raise
    return procs, node


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Sleeper(ember.Actor):
    """A process that ignores its messages: something to register or join."""

    def receive(self, msg: Any) -> None:
        return None


class Watcher(ember.Actor):
    """``("arm", name, tier)``: start waiting for ``name``; ``("seen", name)``: when it was
    seen (``time.time()``); ``("count", n)``: when this node's eventual tier first held ``n``
    claims (asked again after a lost call: the same answer); ``("pg_arm", group)`` /
    ``("pg_seen", group)``: the same for the first join event of ``group``; ``"node"``: this
    node's name."""

    def __init__(self) -> None:
        self.seen: dict[Any, asyncio.Future[float]] = {}
        self.pg_seen: dict[Any, asyncio.Future[float]] = {}
        self.counts: dict[int, asyncio.Future[float]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    async def receive(self, msg: Any) -> Any:
        node = ember.current()
        match msg:
            case "node":
                return node.name
            case ("arm", name, tier):
                fut = self.seen[name] = asyncio.get_running_loop().create_future()

                async def wait() -> None:
                    await node.names.wait_for(name, tier, timeout=60)  # type: ignore[attr-defined]
                    fut.set_result(time.time())

                task = asyncio.ensure_future(wait())
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                return "armed"
            case ("seen", name):
                self._answer_when(self.seen[name], lambda: self.seen.pop(name, None))
            case ("count", n):
                # Poll in a task: the time it first held n claims survives a lost call.
                if n not in self.counts:
                    self.counts[n] = asyncio.get_running_loop().create_future()
                    task = asyncio.ensure_future(self._count(node, n, self.counts[n]))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                self._answer_when(self.counts[n], lambda: None)
            case ("pg_arm", group):
                self.pg_seen[group] = asyncio.get_running_loop().create_future()
                node.pg.monitor(group)  # type: ignore[attr-defined]
                return "armed"
            case ("pg_members", group):
                return node.pg.get_members(group)  # type: ignore[attr-defined]
            case ("pg_seen", group):
                self._answer_when(self.pg_seen[group], lambda: self.pg_seen.pop(group, None))
            case GroupEvent(action="join", group=group):
                fut = self.pg_seen.get(group)
                if fut is not None and not fut.done():
                    fut.set_result(time.time())
        return None

    @staticmethod
    async def _count(node: Any, n: int, fut: asyncio.Future[float]) -> None:
        core = node.names.tiers["eventual"].core
        while len(core) < n:  # noqa: ASYNC110 - no event says how many claims arrived
            await asyncio.sleep(0.005)
        fut.set_result(time.time())

    def _answer_when(self, fut: asyncio.Future[float], forget: Any) -> None:
        """Reply with ``fut``'s result once it is there (then ``forget()`` it), and meanwhile
        take more messages: the events that resolve it among them."""
        handle = self.defer_reply()

        def answer(done: asyncio.Future[float]) -> None:
            forget()
            handle.reply(done.result())

        fut.add_done_callback(answer)


class Registrant(ember.Actor):
    """``("load", writers, duration, start_at, prefix)``: ``writers`` registrants on this node,
    each with its own process, register new consistent names back to back for ``duration``
    seconds from the wall-clock time ``start_at``; answers ``[latencies_s, start, end]``
    (``time.time()``)."""

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("load", writers, duration, start_at, prefix):
                node = ember.current()
                pids = [await node.spawn(Sleeper) for _ in range(writers)]
                await asyncio.sleep(max(0.0, start_at - time.time()))
                latencies: list[float] = []
                perf = time.perf_counter
                stop_at = perf() + duration

                async def one(w: int) -> None:
                    j = 0
                    while perf() < stop_at:
                        j += 1
                        t = perf()
                        await node.names.register(  # type: ignore[attr-defined]
                            (prefix, node.name, w, j), pids[w], tier="consistent", timeout=30
                        )
                        latencies.append(perf() - t)

                start = time.time()
                await asyncio.gather(*(one(w) for w in range(writers)))
                return [latencies, start, time.time()]
        return None
