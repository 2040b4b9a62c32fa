"""``ember status``, ``ember top`` and ``ember cluster up`` against node processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from ember.testing._localcluster import LocalCluster
from tests.integration.clikit import ember_cli

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0  # generous: the machine is shared and small


async def _ember(*args: str, timeout: float = BOUND) -> tuple[int, str, str]:  # noqa: ASYNC109
    return await ember_cli(*args, timeout=timeout)


async def test_status_and_top_read_every_node(tmp_path: Path) -> None:
    async with LocalCluster(
        3, workdir=tmp_path, discovery="seeds", extra_args=("--admin", "127.0.0.1:0")
    ) as cluster:
        admins = [n.admin for n in cluster.nodes.values()]
        assert all(admins)
        auth = ["--cookie-file", str(cluster.cookie_file), "--cluster", cluster.cluster]
        nodes = ["--node", ",".join(a for a in admins if a)]
        code, out, err = await _ember("status", *nodes, *auth, "--json", "--window", "0.2")
        assert code == 0, err
        report = json.loads(out)
        assert report["unreachable"] == {}
        assert {s["node"]["name"] for s in report["nodes"].values()} == {"n1", "n2", "n3"}
        for summary in report["nodes"].values():
            assert sorted(m["name"] for m in summary["members"]) == ["n1", "n2", "n3"]
            assert summary["sections"]["names"]["running"] is True
            assert summary["sections"]["contracts"]["running"] is True
        assert all("messages_per_s" in r for r in report["rates"].values())

        visitor = await cluster.client("visitor")  # leaves: a member in state "left"
        await visitor.stop()
        code, out, err = await _ember("status", *nodes, *auth, "--window", "0")
        assert code == 0, err
        assert "Members" in out and "n3" in out and "visitor" in out
        # two local names: the registry's own and the contracts step host
        assert "names: 2 local, 0 eventual, 0 consistent; 0 conflicts" in out
        assert "pg: scope default: 0 groups" in out and "contracts: 0 running" in out

        code, out, err = await _ember("top", *nodes, *auth, "--once", "-n", "5")
        assert code == 0, err
        assert "ember top - by mailbox" in out and "Supervisor" in out

        code, out, err = await _ember("status", *nodes, "--token-file", str(cluster.cookie_file))
        assert code == 1 and "401" in out  # the cookie itself is not the token

        cluster.kill("n3")
        await cluster.wait("n3")
        code, out, _ = await _ember("status", *nodes, *auth, "--json", "--window", "0")
        assert code == 1
        assert list(json.loads(out)["unreachable"]) == [admins[2]]


async def test_cluster_up_reports_a_node_that_dies(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ember",
        "cluster",
        "up",
        "-n",
        "2",
        "--discovery",
        "none",
        "--workdir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(BOUND):
            lines = []
            while not lines or "Ctrl-C" not in lines[-1]:
                lines.append((await proc.stdout.readline()).decode())
                assert lines[-1], "cluster up ended before it was up"
            n2 = next(line for line in lines if line.strip().startswith("n2"))
            pid = int(re.search(r"pid (\d+)", n2).group(1))  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
            report = ""
            while "last log lines" not in report:
                line = (await proc.stderr.readline()).decode()
                assert line, "cluster up ended without reporting the dead node"
                report += line
            assert f"node n2 (pid {pid}) exited with code -9" in report
            tail = (await proc.stderr.readline()).decode()
            assert tail.startswith("  ") and "n2" in tail  # a line of n2's own log
            still = (await proc.stdout.readline()).decode()
            assert "1 of 2 nodes still running" in still
            proc.send_signal(signal.SIGINT)
            await proc.wait()
        assert proc.returncode == 1  # a node did not exit cleanly
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
