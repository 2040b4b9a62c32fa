"""Errors and supervision between node processes started through the CLI: remote failures
arrive with their type, a reply too large for the caller's frames fails the call at once, and
every supervisor verb works on a supervisor of another node process. The test process joins as
a node of its own."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

import ember
from ember import Supervisor, child
from ember.testing._localcluster import LocalCluster
from ember.transport import FrameTooLarge
from ember.transport._config import TransportConfig

from .actors import Big

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0  # generous: the machine is shared and small
SUPERVISOR = "ember.actors._supervisor:Supervisor"


@contextlib.asynccontextmanager
async def join(cluster: LocalCluster, **config: Any) -> AsyncIterator[ember.Node]:
    """This process as node ``tester``, connected to every node, and the current node."""
    async with ember.Node(
        "tester", listen="127.0.0.1:0", cookie=cluster.cookie, config=TransportConfig(**config)
    ) as node:
        for n in cluster.nodes.values():
            await node.connect_node(n.spec)
        yield node


async def test_remote_failures_between_processes_arrive_with_their_type(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(2, workdir=tmp_path, extra_args=("--spawn-allow", "tests"))
        await cluster.start()
        try:
            async with join(cluster, max_frame_size=100_000) as me:
                with pytest.raises(ember.StartError) as info:
                    await me.spawn("tests.integration.actors:FailsToStart", on="n1")
                assert info.value.reason == (
                    "exception",
                    "builtins.ValueError",
                    "no database here",
                )
                assert isinstance(info.value.__cause__, ember.RemoteError)
                assert "no database here" in info.value.__cause__.remote_traceback
                with pytest.raises(ember.UsageError, match="not allowed on n1"):
                    await me.spawn("examples.cluster_actors:Counter", on="n1")
                await me.spawn("tests.integration.actors:Echo", name="echo", on="n1")
                with pytest.raises(ember.NameTaken) as taken:
                    await me.spawn("tests.integration.actors:Echo", name="echo", on="n1")
                assert taken.value.name == "echo" and taken.value.owner.node == "n1"
                # n1's reply is over the tester's max_frame_size: the call fails at once
                big = await me.spawn(Big, on="n1")
                with pytest.raises(FrameTooLarge) as too_large:
                    await me.call(big, ("bytes", 200_000), timeout=None)
                assert (too_large.value.limit, too_large.value.node) == (100_000, "tester")
                assert await me.call(big, ("bytes", 3)) == b"xxx"
        finally:
            assert (await cluster.stop()) == {"n1": 0, "n2": 0}
    lines = (tmp_path / "n1.log").read_text().splitlines()
    assert len([line for line in lines if "too large" in line]) == 1
    # the one traceback in n1's log is the crash of FailsToStart's started hook
    assert all("no database here" in line for line in lines if "Traceback" in line)
    assert not [line for line in lines if "callback" in line]


async def test_supervisor_verbs_between_two_node_processes(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(2, workdir=tmp_path)
        await cluster.start()
        try:
            async with join(cluster) as me:
                assert "tests.integration.remote_only" not in sys.modules
                sup = await me.spawn(SUPERVISOR, [child(Big, id="big")], name="sup", on="n2")
                # n1's actor drives n2's supervisor: traffic between the two node processes
                client = await me.spawn("tests.integration.actors:SupervisorClient", on="n1")
                spec = child("tests.integration.remote_only:Sleeper", id="sleeper")
                pid = await me.call(client, ("start", ("sup", "n2"), spec))
                assert pid.node == "n2" and await me.call(pid, "hi") == ("sleeper", "n2")
                rows = await me.call(client, ("which", sup))
                assert [(r.id, r.kind) for r in rows] == [("big", "worker"), ("sleeper", "worker")]
                assert rows[0].behaviour is Big  # loaded here: the class
                assert rows[1].behaviour == "tests.integration.remote_only:Sleeper"
                counts = await me.call(client, ("count", sup))
                assert counts == {"specs": 2, "active": 2, "supervisors": 0, "workers": 2}
                await me.call(client, ("terminate", sup, "sleeper"))
                assert [r.pid for r in await Supervisor.which_children(sup)][1] is None
                again = await Supervisor.restart_child(sup, "sleeper")
                assert await me.call(again, "hi") == ("sleeper", "n2")
                with pytest.raises(ember.UsageError, match="already started"):
                    await Supervisor.start_child(sup, child(Big, id="big"))
        finally:
            assert (await cluster.stop()) == {"n1": 0, "n2": 0}
