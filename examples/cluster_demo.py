"""Ember cluster demo: three node processes on loopback, actors on each, calls across nodes,
a node killed with SIGKILL and the monitors that see it, then a clean shutdown.

Run it with ``make demo`` (or ``python -m examples.cluster_demo`` from the repository root).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import ember
from ember.cli._cluster import LocalCluster
from ember.transport._config import TransportConfig


class Watcher(ember.Actor):
    """Monitors pids on other nodes and reports each Down with the time it arrived."""

    def __init__(self, downs: asyncio.Queue[tuple[ember.Down, float]]) -> None:
        self.downs = downs

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("watch", pid):
                return ember.monitor(pid)
            case ember.Down() as down:
                self.downs.put_nowait((down, time.monotonic()))
        return None


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ember-demo-") as workdir:
        await demo(Path(workdir))


async def demo(workdir: Path) -> None:
    async with LocalCluster(3, workdir=workdir) as cluster:
        print("started 3 node processes, connected in a full mesh:")
        for n in cluster.nodes.values():
            print(f"  {n.name} at {n.address} (os pid {n.process.pid})")
        peers = [n.spec for n in cluster.nodes.values()]
        config = TransportConfig(heartbeat_interval=0.5, heartbeat_timeout=2.0)
        async with ember.Node(
            "demo", listen="127.0.0.1:0", cookie=cluster.cookie, connect=peers, config=config
        ) as me:
            print(f"this process joined as node {me.name}; connected to {me.connected_nodes()}")
            counters = {
                name: await me.spawn("examples.cluster_actors:Counter", 10 * i, on=name)
                for i, name in enumerate(cluster.nodes, start=1)
            }
            for name, pid in counters.items():
                print(f"  spawned Counter {pid} on {name}")
            ember.send(counters["n1"], ("relay", counters["n2"], 5))  # n1 sends to n2
            for pid in counters.values():
                print(f"  call {pid} 'get' -> {await ember.call(pid, 'get')}")

            downs: asyncio.Queue[tuple[ember.Down, float]] = asyncio.Queue()
            watcher = await me.spawn(Watcher, downs)
            victim = counters["n3"]
            ref = await ember.call(watcher, ("watch", victim))
            print(f"watching {victim} ({ref}); killing node n3 with SIGKILL...")
            killed_at = time.monotonic()
            cluster.kill("n3")
            down, seen_at = await asyncio.wait_for(downs.get(), timeout=30)
            print(
                f"  Down({down.pid}, reason={down.reason!r}) after "
                f"{seen_at - killed_at:.2f} s (heartbeat timeout {config.heartbeat_timeout} s)"
            )
            try:
                await ember.call(victim, "get", timeout=2)
            except ember.NoProc as exc:
                print(f"  a call to it now raises {type(exc).__name__} ({exc.reason!r})")
            print(f"still connected to {me.connected_nodes()}")
        codes = await cluster.stop()
        print("stopped the cluster: " + ", ".join(f"{n} exit {c}" for n, c in codes.items()))


if __name__ == "__main__":
    ember.run(main)
