"""Contracts across three node processes on loopback (durable store on all three, fsync on,
``--meta capabilities=...`` different per node): a run whose step's node is killed with SIGKILL
mid-step completes on another node; an event delivered while the store's leader is killed is
consumed once; a waiting run survives the restart of every node. The test process joins the
mesh as a client node. Every wait is on a condition, with generous bounds."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ember.cli._cluster import LocalCluster, NodeProcess
from ember.contracts import ContractsConfig, RunStatus, StoreUnavailable
from tests.integration.contracts_kit import Render, Shipment

pytestmark = pytest.mark.ember_realtime

BOUND = 90.0
STORE = ("n1", "n2", "n3")
CAPS = {"n1": "gpu", "n2": "gpu", "n3": "storage"}


class ContractNodes(LocalCluster):
    """Three node processes with the contracts store, each with its own capabilities."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(
            3,
            workdir=workdir,
            discovery="seeds",
            cluster=f"c{secrets.token_hex(4)}",
            extra_args=(
                "--contracts-store",
                ",".join(STORE),
                "--contracts-load",
                "tests.integration.contracts_kit",
            ),
        )

    async def start_node(
        self, name: str, connect: list[NodeProcess] | None = None, listen: str | None = None
    ) -> NodeProcess:
        shared = self.extra_args
        self.extra_args = (*shared, "--meta", f"capabilities={CAPS[name]}")
        try:
            return await super().start_node(name, connect, listen)
        finally:
            self.extra_args = shared


async def status_of(client: Any, run_id: str) -> RunStatus | None:
    try:
        return await client.contracts.status(run_id)  # type: ignore[no-any-return]
    except StoreUnavailable:
        return None


async def until(check: Any, what: str) -> Any:
    """Poll ``check()`` (async) every 0.1 s until it returns something truthy."""
    async with asyncio.timeout(BOUND):
        while not (value := await check()):  # noqa: ASYNC110 - another process's state
            await asyncio.sleep(0.1)
    return value


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[ContractNodes, Any]]:
    """The three node processes and a client node in this process (which offers nothing)."""
    procs = ContractNodes(tmp_path)
    async with asyncio.timeout(BOUND * 4):
        await procs.start()
        client = await procs.client(
            "client", BOUND, contracts=ContractsConfig(store=STORE), meta={"capabilities": []}
        )
        try:
            assert client.contracts is not None
            yield procs, client
        finally:
            await client.stop()
            await procs.stop()


async def test_kill_9_the_step_node_and_deliver_during_a_leader_change(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (procs, client):
        # --- the node running a step dies: the run completes on another node ---
        await client.contracts.start_on(
            "n1", Render, {"job": "j1", "seconds": 4.0}, run_id="render-1"
        )

        async def frame_running() -> str | None:
            st = await status_of(client, "render-1")
            step = None if st is None else st.steps.get("frame")
            return step.node if step is not None and step.status == "running" else None

        first = await until(frame_running, "frame running")
        procs.kill(first)  # SIGKILL: the owner n1 itself, or n2
        await procs.wait(first)
        out = await client.contracts.result("render-1", timeout=BOUND)
        (other,) = {"n1", "n2"} - {first}
        assert out["frame"] == ["j1", other, 2]
        status = await client.contracts.status("render-1")
        assert status.status == "succeeded" and status.steps["frame"].attempts == 2
        others = [p for n, p in procs.nodes.items() if n != first]
        await procs.start_node(first, connect=others, listen=procs.nodes[first].address)

        # --- an event delivered while the store's leader dies is consumed once ---
        store = client.contracts.cluster
        assert store is not None
        leader = await store.wait_for_leader(timeout=BOUND)
        owner = next(n for n in STORE if n != leader)
        await client.contracts.start_on(owner, Shipment, {"order": "o1"}, run_id="ship-1")

        async def waiting() -> bool:
            st = await status_of(client, "ship-1")
            return st is not None and st.status == "waiting"

        await until(waiting, "ship-1 waiting")
        delivery = asyncio.ensure_future(
            client.contracts.deliver_event(
                "delivered", {"order": "o1"}, "door", event_id="d-1", timeout=BOUND
            )
        )
        await asyncio.sleep(0)
        procs.kill(leader)
        assert await delivery == ["ship-1"]
        again = await client.contracts.deliver_event(
            "delivered", {"order": "o1"}, "door", event_id="d-1", timeout=BOUND
        )
        assert again == ["ship-1"]  # the retry of that delivery, not a second one
        out = await client.contracts.result("ship-1", timeout=BOUND)
        assert out["confirm"][:2] == ["o1", "door"]
        status = await client.contracts.status("ship-1")
        assert [e.verdict for e in status.events].count("delivered") == 1


async def test_a_waiting_run_survives_the_restart_of_every_node(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (procs, client):
        await client.contracts.start_on("n2", Shipment, {"order": "o2"}, run_id="ship-2")

        async def waiting() -> bool:
            st = await status_of(client, "ship-2")
            return st is not None and st.status == "waiting"

        await until(waiting, "ship-2 waiting")
        addresses = {name: procs.nodes[name].address for name in STORE}
        for name in STORE:
            procs.kill(name)
            await procs.wait(name)
        for name in STORE:  # each on its own address again, so the client finds it
            others = [p for n, p in procs.nodes.items() if n != name]
            await procs.start_node(name, connect=others, listen=addresses[name])
        await procs.wait_converged(timeout=BOUND)
        await until(waiting, "ship-2 still waiting after the restart")
        await client.contracts.deliver_event("delivered", {"order": "o2"}, "porch", timeout=BOUND)
        out = await client.contracts.result("ship-2", timeout=BOUND)
        assert out["confirm"] == ["o2", "porch", "n2"]
