"""Ember demo: one node, a supervision tree, calls, a crash and its restart, monitors, shutdown.

Run it with ``make demo`` (or ``python examples/demo.py``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import ember


class Counter(ember.Actor):
    """Counts; crashes on purpose when told to."""

    def __init__(self, start: int = 0) -> None:
        self.n = start

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("add", k):
                self.n += k
            case "get":
                return self.n
            case "crash":
                raise RuntimeError("asked to crash")
        return None

    def terminate(self, reason: Any) -> None:
        print(f"  {self.pid} terminate({reason!r}) at n={self.n}")


class Watcher(ember.Actor):
    """Monitors a process and reports the Down message it gets."""

    def __init__(self, seen: asyncio.Future[Any]) -> None:
        self.seen = seen

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("watch", pid):
                return ember.monitor(pid)
            case ember.Down(_, pid, reason):
                self.seen.set_result((pid, reason))
        return None


async def main() -> None:
    async with ember.Node("demo") as node:
        print(f"node {node.name} started; root supervisor {node.root}")
        sup = await node.start_child(
            ember.child(
                ember.Supervisor,
                children=[
                    ember.child(Counter, 0, id="first", name="first"),
                    ember.child(Counter, 100, id="second", name="second"),
                ],
                strategy="one_for_one",
                intensity=3,
                period=5.0,
            )
        )
        print(f"supervisor {sup} with children:")
        for c in await ember.Supervisor.which_children(sup):
            print(f"  {c.id}: {c.pid} ({c.kind})")

        ember.send("first", ("add", 5))
        print(f"call first get -> {await ember.call('first', 'get')}")

        seen: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        watcher = await node.spawn(Watcher, seen)
        old = node.whereis("first")
        assert old is not None
        await ember.call(watcher, ("watch", old))
        print(f"crashing {old} (the error log below is expected)...")
        try:
            await ember.call(old, "crash")
        except ember.NoProc as exc:
            print(f"  the call raised NoProc, reason {exc.reason!r}")
        pid, reason = await seen
        print(f"  watcher got Down for {pid}: {reason!r}")
        # The supervisor got the exit signal before our request, so it answers after restarting.
        await ember.Supervisor.which_children(sup)
        print(
            f"  restarted as {node.whereis('first')}, state is fresh: "
            f"{await ember.call('first', 'get')}"
        )

        stats = node.statistics()
        print(f"{stats.processes} processes; counters {stats.counters}")
        print("shutting down in order (children stop in reverse start order):")
    print("node stopped")


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="  [log] %(name)s: %(message)s")
    ember.run(main)
