"""Membership between node processes on loopback: discovery, kill -9, restart, ``ember members``.

Each node process prints its member events as JSON lines; :class:`LocalCluster` follows them, so
every wait here is on what the nodes themselves report, with generous bounds.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import sys
from pathlib import Path

import pytest

from ember.mesh import SwimConfig
from ember.testing._localcluster import LocalCluster

from .clikit import ember_cli

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0


def alive(cluster: LocalCluster, observer: str) -> set[str]:
    """Who ``observer`` sees alive, itself included."""
    view = cluster.nodes[observer].statuses()
    return {k for k, v in view.items() if v == "alive"} | {observer}


async def members_cli(cluster: LocalCluster, node: str) -> list[dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ember",
        "members",
        "--node",
        cluster.nodes[node].spec,
        "--cookie-file",
        str(cluster.cookie_file),
        "--cluster",
        cluster.cluster,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    members: list[dict[str, object]] = json.loads(out)
    return members


@pytest.mark.parametrize("discovery", ["seeds", "mdns"])
async def test_five_processes_find_each_other_and_see_a_kill_9(
    tmp_path: Path, discovery: str
) -> None:
    cluster = LocalCluster(
        5, workdir=tmp_path, discovery=discovery, cluster=f"t{secrets.token_hex(4)}"
    )
    async with asyncio.timeout(BOUND * 3):
        await cluster.start()  # returns once every node sees all five alive
        try:
            names = set(cluster.nodes)
            for name in names:
                assert alive(cluster, name) == names
            listed = await members_cli(cluster, "n1")
            assert {m["name"] for m in listed} == names
            assert all(m["status"] == "alive" for m in listed)

            cluster.kill("n5")
            await cluster.wait("n5")
            others = names - {"n5"}
            await cluster.wait_for(
                lambda: all(cluster.nodes[o].statuses().get("n5") == "failed" for o in others),
                BOUND,
                "n5 failed everywhere",
            )
        finally:
            codes = await cluster.stop()
    assert all(codes[n] == 0 for n in names - {"n5"})


async def test_a_restarted_node_rejoins_with_a_new_incarnation(tmp_path: Path) -> None:
    cluster = LocalCluster(
        3, workdir=tmp_path, discovery="seeds", cluster=f"t{secrets.token_hex(4)}"
    )
    async with asyncio.timeout(BOUND * 3):
        await cluster.start()
        try:
            before = cluster.nodes["n1"].view["n3"]["incarnation"]
            cluster.kill("n3")
            await cluster.wait("n3")
            await cluster.wait_for(
                lambda: cluster.nodes["n1"].statuses().get("n3") == "failed", BOUND, "n3 failed"
            )
            restarted = await cluster.start_node("n3", connect=[cluster.nodes["n1"]])
            assert restarted.incarnation is not None and restarted.incarnation > before
            await cluster.wait_converged(BOUND)
            # The new incarnation, or one it refuted a suspicion with since (under load a
            # refutation can precede its ready line; a bump of an alive member is no event).
            assert cluster.nodes["n1"].view["n3"]["incarnation"] > before
            assert cluster.nodes["n2"].view["n3"]["kind"] in ("joined", "alive")
        finally:
            codes = await cluster.stop()
    assert codes == {"n1": 0, "n2": 0, "n3": 0}


async def test_a_node_restarted_on_a_new_port_replaces_its_old_address_everywhere(
    tmp_path: Path,
) -> None:
    """Killed and restarted at once on another port, before its peers noticed: they must not
    keep its old address alive (their TCP fallback probes reach the new process by name) but
    take the new one, within the failure-detection bound of the profile. The WAN profile's
    5 s probes make the peers slower to notice the crash than the restart is, the case in
    which the old address stayed alive for ever; the new one is taken at its join."""
    cluster = LocalCluster(
        3,
        workdir=tmp_path,
        discovery="seeds",
        cluster=f"t{secrets.token_hex(4)}",
        mesh_profile="wan",
    )
    bound = SwimConfig.wan().detection_bound(3)
    async with asyncio.timeout(BOUND * 3 + bound):
        await cluster.start()
        try:
            old = cluster.nodes["n3"].address
            cluster.kill("n3")
            await cluster.wait("n3")
            port = other_port(int(old.rpartition(":")[2]))
            restarted = await cluster.start_node(
                "n3", connect=[cluster.nodes["n1"]], listen=f"127.0.0.1:{port}"
            )
            assert restarted.address == f"127.0.0.1:{port}"
            assert restarted.incarnation is not None
            incarnation = restarted.incarnation

            def moved() -> bool:
                views = [cluster.nodes[o].view.get("n3", {}) for o in ("n1", "n2")]
                return all(
                    v.get("address") == restarted.address
                    and v.get("status") == "alive"
                    and v.get("incarnation", 0) >= incarnation
                    for v in views
                )

            await cluster.wait_for(moved, bound, "n3's new address in every view")
        finally:
            codes = await cluster.stop()
    assert codes == {"n1": 0, "n2": 0, "n3": 0}


def other_port(taken: int) -> int:
    """A free loopback port (TCP and UDP) other than ``taken``."""
    while True:
        with socket.socket() as s, socket.socket(type=socket.SOCK_DGRAM) as u:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            if port == taken:
                continue
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


async def test_a_graceful_stop_is_reported_as_left(tmp_path: Path) -> None:
    cluster = LocalCluster(
        3, workdir=tmp_path, discovery="seeds", cluster=f"t{secrets.token_hex(4)}"
    )
    async with asyncio.timeout(BOUND * 2):
        await cluster.start()
        try:
            cluster.kill("n2", sig=15)
            assert await cluster.wait("n2") == 0
            await cluster.wait_for(
                lambda: (
                    cluster.nodes["n1"].statuses().get("n2") == "left"
                    and cluster.nodes["n3"].statuses().get("n2") == "left"
                ),
                BOUND,
                "n2 left",
            )
        finally:
            await cluster.stop()


async def test_members_of_an_unreachable_node_fail_within_the_timeout(tmp_path: Path) -> None:
    cookie = tmp_path / "cookie"
    cookie.write_text("secret\n")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = await ember_cli(
        *("members", "--node", f"ghost@127.0.0.1:{port}"),
        *("--cookie-file", str(cookie), "--timeout", "1"),
        timeout=BOUND,
    )
    assert code == 1
    assert "cannot get the members of ghost" in err and "connection refused" in err
