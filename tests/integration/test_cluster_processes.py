"""Node processes started through the CLI: calls across them, kill -9 and SIGSTOP seen by
monitors, a wrong cookie refused. The test process joins the cluster as a node of its own."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

import ember
from ember.testing._localcluster import LocalCluster
from ember.transport._config import TransportConfig

pytestmark = pytest.mark.ember_realtime

ECHO = "tests.integration.actors:Echo"
# The node processes run the default profile: heartbeat every 1 s, a peer silent for 3 s is down.
HEARTBEAT_TIMEOUT = 3.0
BOUND = 30.0  # generous: the machine is shared and small


class Watcher(ember.Actor):
    def __init__(self, downs: asyncio.Queue[tuple[ember.Down, float]]) -> None:
        self.downs = downs

    async def receive(self, msg: Any) -> Any:
        match msg:
            case ("watch", pid):
                return ember.monitor(pid)
            case ember.Down() as down:
                self.downs.put_nowait((down, time.monotonic()))
        return None


async def join(cluster: LocalCluster, cookie: str | None = None) -> ember.Node:
    node = ember.Node(
        "tester",
        listen="127.0.0.1:0",
        cookie=cookie or cluster.cookie,
        config=TransportConfig(heartbeat_interval=0.5, heartbeat_timeout=HEARTBEAT_TIMEOUT),
    )
    await node.start()
    for n in cluster.nodes.values():
        await node.connect_node(n.spec)
    return node


async def test_three_node_processes_call_each_other_and_stop_cleanly(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(3, workdir=tmp_path)
        await cluster.start()
        try:
            me = await join(cluster)
            try:
                pids = {name: await me.spawn(ECHO, on=name) for name in cluster.nodes}
                assert {p.node for p in pids.values()} == {"n1", "n2", "n3"}
                for name, pid in pids.items():
                    assert await me.call(pid, "node") == name
                # n1's actor calls n2's actor: traffic between two node processes
                assert await me.call(pids["n1"], ("relay", pids["n2"], "node")) == "n2"
            finally:
                await me.stop()
        finally:
            codes = await cluster.stop()
        assert codes == {"n1": 0, "n2": 0, "n3": 0}


async def test_kill_9_fires_noconnection_for_every_monitor(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(3, workdir=tmp_path)
        await cluster.start()
        try:
            me = await join(cluster)
            try:
                downs: asyncio.Queue[tuple[ember.Down, float]] = asyncio.Queue()
                watcher = await me.spawn(Watcher, downs)
                victims = [await me.spawn(ECHO, on="n3") for _ in range(5)]
                survivor = await me.spawn(ECHO, on="n2")
                refs = {await me.call(watcher, ("watch", p)) for p in victims}
                await me.call(watcher, ("watch", survivor))
                killed_at = time.monotonic()
                cluster.kill("n3")
                seen = [await downs.get() for _ in victims]
                assert {d.ref for d, _ in seen} == refs
                assert {d.reason for d, _ in seen} == {"noconnection"}
                assert max(t for _, t in seen) - killed_at < HEARTBEAT_TIMEOUT + 2.0
                assert await me.call(survivor, "still here") == "still here"
                assert downs.empty()
            finally:
                await me.stop()
        finally:
            await cluster.stop()


async def test_a_stalled_node_is_declared_down_by_heartbeats(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(1, workdir=tmp_path)
        await cluster.start()
        try:
            me = await join(cluster)
            try:
                downs: asyncio.Queue[tuple[ember.Down, float]] = asyncio.Queue()
                watcher = await me.spawn(Watcher, downs)
                pid = await me.spawn(ECHO, on="n1")
                ref = await me.call(watcher, ("watch", pid))
                stopped_at = time.monotonic()
                cluster.kill("n1", signal.SIGSTOP)  # alive but silent: only heartbeats tell
                down, seen_at = await downs.get()
                assert down == ember.Down(ref, pid, "noconnection")
                assert HEARTBEAT_TIMEOUT - 0.5 <= seen_at - stopped_at < HEARTBEAT_TIMEOUT + 3.0
            finally:
                cluster.kill("n1", signal.SIGCONT)
                await me.stop()
        finally:
            await cluster.stop()


async def test_a_wrong_cookie_is_refused(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(1, workdir=tmp_path)
        await cluster.start()
        try:
            intruder = ember.Node("intruder", listen="127.0.0.1:0", cookie="not-the-cookie")
            await intruder.start()
            try:
                with pytest.raises(ember.EmberError):
                    async with asyncio.timeout(10):
                        await intruder.connect_node(cluster.nodes["n1"].spec)
                assert intruder.connected_nodes() == []
            finally:
                await intruder.stop()
        finally:
            assert (await cluster.stop()) == {"n1": 0}
    # Read n1's log once the node has exited and its stderr is drained: the refusal is in it.
    log = (tmp_path / "n1.log").read_text()
    assert "intruder" in log or "auth" in log.lower()
