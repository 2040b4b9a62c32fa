"""The transport between node processes: fault injection driven from another process (a
partition made by telling each side, then healed), and the cookie rule across the CLI and
Python."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import ember
from ember.testing._localcluster import LocalCluster

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0  # generous: the machine is shared and small


async def ember_fault(cluster: LocalCluster, spec: str, *action: str) -> tuple[int, Any, str]:
    """Run ``ember fault --json`` against node ``spec``; its exit code, JSON state and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ember",
        "fault",
        "--node",
        spec,
        "--cookie-file",
        str(cluster.cookie_file),
        "--cluster",
        cluster.cluster,
        "--timeout",
        "20",
        "--json",
        *action,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else None, err.decode()


async def test_partition_one_node_process_by_telling_each_side_then_heal(tmp_path: Path) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(
            3,
            workdir=tmp_path,
            cluster="chaos-test",
            discovery="seeds",
            mesh_profile="local",
            extra_args=("--chaos",),
        )
        await cluster.start()
        try:
            n1, n2, n3 = (cluster.nodes[n] for n in ("n1", "n2", "n3"))
            results = await asyncio.gather(
                ember_fault(cluster, n3.spec, "partition", "n1", "n2"),
                ember_fault(cluster, n1.spec, "partition", "n3"),
                ember_fault(cluster, n2.spec, "partition", "n3"),
            )
            for code, state, err in results:
                assert code == 0, err
                assert state["enabled"] and state["partitioned"]
            await cluster.wait_for(
                lambda: n1.statuses().get("n3") == "failed" == n2.statuses().get("n3"),
                BOUND,
                "n1 and n2 declaring n3 failed",
            )
            assert n1.statuses()["n2"] == n2.statuses()["n1"] == "alive"  # the majority holds
            code, state, err = await ember_fault(cluster, n1.spec, "status")
            assert code == 0 and state["blocked_frames"] + state["blocked_connections"] > 0, err
            for node in (n1, n2, n3):
                code, state, err = await ember_fault(cluster, node.spec, "heal")
                assert code == 0 and state["partitioned"] == [], err
            await cluster.wait_converged(timeout=BOUND)  # n3 rejoins: alive everywhere
        finally:
            codes = await cluster.stop()
        assert codes == {"n1": 0, "n2": 0, "n3": 0}


async def test_a_python_node_reading_the_cli_cookie_file_joins_and_production_nodes_refuse_faults(
    tmp_path: Path,
) -> None:
    async with asyncio.timeout(BOUND):
        cluster = LocalCluster(1, workdir=tmp_path, discovery="none")  # no --chaos
        await cluster.start()
        try:
            assert cluster.cookie_file.read_text().endswith("\n")  # as `echo` writes it
            node = ember.Node(
                "tester", listen="127.0.0.1:0", cookie=cluster.cookie_file.read_text()
            )
            await node.start()
            try:
                await node.connect_node(cluster.nodes["n1"].spec)  # the same cookie: in
                assert node.connected_nodes() == ["n1"]
            finally:
                await node.stop()
            code, state, err = await ember_fault(cluster, cluster.nodes["n1"].spec, "drop", "0.5")
            assert code == 1 and state is None
            assert "fault injection is off on node 'n1'" in err and "--chaos" in err
        finally:
            codes = await cluster.stop()
        assert codes == {"n1": 0}
