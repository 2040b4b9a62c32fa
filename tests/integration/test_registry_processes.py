"""The registry across five node processes on loopback, started by the CLI (``ember node
start``, seeds, the local profiles): the system group forms by itself, a consistent and an
eventual name registered on one node are reached by send and call from every node, ``ember
names`` / ``ember groups`` list them, and when the owner's process is killed with SIGKILL both
names are released within the failure detection bound and can be registered again.

The test process joins the mesh as a registry client (no member). Every wait is on a condition
with a generous bound: the machine is small and shared."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import ember
from ember.mesh import SwimConfig
from ember.registry import RegistryConfig, TierUnavailable
from ember.testing._localcluster import LocalCluster

pytestmark = pytest.mark.ember_realtime

BOUND = 90.0
HOLDER = "tests.integration.actors:NameHolder"
CALLER = "tests.integration.actors:NameCaller"


async def until(check: Any, what: str, bound: float = BOUND) -> None:
    try:
        async with asyncio.timeout(bound):
            while not check():  # noqa: ASYNC110 - the state of other processes
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {bound} s: {what}") from None


async def register_retrying(client: ember.Node, name: str, pid: ember.Pid, tier: Any) -> Any:
    """Register until the tier takes it (the group may be electing a leader)."""
    while True:
        try:
            return await client.names.register(name, pid, tier=tier, timeout=5.0)
        except TierUnavailable:
            await asyncio.sleep(0.1)


def cluster(n: int, workdir: Path) -> LocalCluster:
    """``n`` node processes joined by seeds, with the registry's local profile."""
    return LocalCluster(
        n,
        workdir=workdir,
        discovery="seeds",
        cluster=f"g{secrets.token_hex(4)}",
        extra_args=("--registry-profile", "local"),
        ready_timeout=BOUND,
    )


def cli(procs: LocalCluster, *argv: str) -> Any:
    node = procs.nodes["n2"]
    out = subprocess.run(
        [
            *(sys.executable, "-m", "ember", *argv, "--node", node.spec),
            *("--cookie-file", str(procs.cookie_file), "--cluster", procs.cluster, "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


async def test_names_across_five_processes_and_a_kill_9_of_the_owner(tmp_path: Path) -> None:
    procs = cluster(5, tmp_path)
    async with asyncio.timeout(BOUND * 5):
        await procs.start()
        client = await procs.client("client", BOUND, registry=RegistryConfig.local(member=False))
        try:
            await until(
                lambda: len(client.names.statistics()["consistent"]["group_nodes"]) >= 3,
                "the system group formed",
            )
            holder = await client.spawn(HOLDER, on="n1")
            token = await register_retrying(client, "leader", holder, "consistent")
            assert isinstance(token, int)
            await register_retrying(client, "svc", holder, "eventual")
            callers = [await client.spawn(CALLER, on=f"n{i}") for i in range(1, 6)]
            for caller in callers:
                for name, tier in (("leader", "consistent"), ("svc", "eventual")):
                    got = await client.call(caller, ("call", name, tier, "ping"), timeout=30)
                    assert got == ("held", "ping")
            assert await client.call(holder, ("join", "workers")) == "joined"

            rows = await asyncio.to_thread(cli, procs, "names")
            mine = {(r["name"], r["tier"]): r for r in rows}
            assert mine["leader", "consistent"]["token"] == token
            assert mine["svc", "eventual"]["node"] == "n1"
            await until(
                lambda: "workers" in client.pg.which_groups(), "the group seen by the client"
            )
            groups = await asyncio.to_thread(cli, procs, "groups")
            assert [g["nodes"] for g in groups if g["group"] == "workers"] == [["n1"]]

            killed_at = time.monotonic()
            procs.kill("n1")
            await procs.wait("n1")
            await until(
                lambda: (
                    client.names.whereis("leader") is None and client.names.whereis("svc") is None
                ),
                "both names released",
            )
            released_in = time.monotonic() - killed_at
            bound = SwimConfig.local().detection_bound(6) + 5.0  # + a Raft round, generously
            assert released_in < bound, f"released after {released_in:.1f} s (bound {bound})"
            again = await client.spawn(HOLDER, on="n2")
            new_token = await register_retrying(client, "leader", again, "consistent")
            assert isinstance(new_token, int) and new_token > token
            await register_retrying(client, "svc", again, "eventual")
            caller = callers[2]
            got = await client.call(caller, ("call", "leader", "consistent", "again"), timeout=30)
            assert got == ("held", "again")
        finally:
            await client.stop()
            await procs.stop()


async def test_a_test_client_that_joins_first_never_founds_the_system_group(tmp_path: Path) -> None:
    # The client joins before the group forms, and its name sorts first: were it a candidate,
    # it would found ember.names as a voter and leave the group a voter short when it stops.
    procs = cluster(3, tmp_path)
    async with asyncio.timeout(BOUND * 3):
        await procs.start()
        client = await procs.client("a-client", BOUND)
        try:
            await until(
                lambda: len(client.names.statistics()["consistent"]["group_nodes"]) == 3,
                "the system group formed",
            )
            stats = client.names.statistics()["consistent"]
            assert sorted(stats["group_nodes"]) == ["n1", "n2", "n3"], stats
            assert stats["member"] is None, stats  # hosts no member of the group
            pid = await client.spawn(ember.Actor)
            assert await register_retrying(client, "first", pid, "consistent") > 0
        finally:
            await client.stop()
            await procs.stop()
