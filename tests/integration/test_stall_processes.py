"""A node process whose event loop an actor blocks says who did it, in its log: node, pid,
class and message type (the watchdog ``ember node start`` runs, threshold 1 s)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

import ember
from ember.cli._cluster import LocalCluster

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0  # generous: the machine is shared and small


async def test_a_receive_that_blocks_the_loop_is_named_in_the_nodes_log(tmp_path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(1, workdir=tmp_path)
        await cluster.start()
        try:
            async with ember.Node("tester", listen="127.0.0.1:0", cookie=cluster.cookie) as me:
                await me.connect_node(cluster.nodes["n1"].spec)
                pid = await me.spawn("tests.integration.actors:Blocker", on="n1")
                # 1.8 s: over the 1 s threshold, under the 3 s heartbeat timeout
                assert await me.call(pid, ("block", 1.8)) == ("block", 1.8)
                assert await me.call(pid, "after") == "after"
        finally:
            assert (await cluster.stop()) == {"n1": 0}
    lines = [json.loads(line) for line in (tmp_path / "n1.log").read_text().splitlines()]
    stalls = [line["msg"] for line in lines if line["logger"] == "ember.actors.watchdog"]
    assert len(stalls) == 2, stalls
    who = f"on node n1 by process {pid} (tests.integration.actors.Blocker)"
    assert all(who in line and "tuple 'block'" in line for line in stalls)
    assert "blocked for more than 1.0 s" in stalls[0]
    ended = re.search(r"ran again after being blocked for ([0-9.]+) s", stalls[1])
    assert ended is not None and float(ended.group(1)) >= 1.5
