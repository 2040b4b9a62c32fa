"""Membership of node processes in network namespaces: mDNS alone introduces them, kill -9 is
seen by all, a restart rejoins with a new incarnation, a partition made with drop rules splits
the view and healing it merges the view back into one.

Each namespace runs ``ember node start`` (``--discovery mdns``, the ``local`` profile); the
nodes print member events as JSON lines, and every wait is on those events.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .netns import JsonLines, Netns, NetnsLab, firewall_tool, netns_lab, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

PORT = 7946
BOUND = 60.0  # suspicion and reconnect take seconds in the local profile; the machine is small


class NodeProc(JsonLines):
    """One ``ember node start`` process in a namespace."""

    def __init__(self, lab: NetnsLab, ns: Netns, name: str, cluster: str, workdir: Path) -> None:
        argv = [sys.executable, "-m", "ember", "node", "start", "--name", name]
        argv += ["--listen", f"{ns.address}:{PORT}", "--cookie-file", str(workdir / "cookie")]
        argv += ["--cluster", cluster, "--data-dir", str(workdir / name), "--discovery", "mdns"]
        argv += ["--mesh-profile", "local", "--no-mdns-probe", "--log-level", "warning"]
        super().__init__(lab.popen(ns, argv), name, BOUND)
        self.name = name

    def view(self) -> dict[str, dict[str, Any]]:
        """Each member as this node last reported it (itself excluded)."""
        members: dict[str, dict[str, Any]] = {}
        for e in self.events:
            if e.get("event") == "ready":
                for m in e.get("members", ()):
                    members.setdefault(m["name"], m)
            elif e.get("event") == "member":
                members[e["name"]] = e
        return members

    def status(self, name: str) -> str | None:
        m = self.view().get(name)
        return None if m is None else str(m["status"])

    def alive(self) -> set[str]:
        return {n for n, m in self.view().items() if m["status"] == "alive"} | {self.name}

    def ready(self) -> dict[str, Any]:
        return next(e for e in self.events if e.get("event") == "ready")


@contextmanager
def mesh_lab(n: int, tmp_path: Path) -> Iterator[tuple[NetnsLab, list[NodeProc], str]]:
    cluster = f"mesh-{secrets.token_hex(4)}"
    (tmp_path / "cookie").write_text(secrets.token_urlsafe(24) + "\n")
    with netns_lab(n) as lab:
        nodes = [NodeProc(lab, ns, f"n{ns.index}", cluster, tmp_path) for ns in lab.namespaces]
        yield lab, nodes, cluster


def converged(nodes: list[NodeProc]) -> None:
    names = {n.name for n in nodes}
    for node in nodes:
        node.wait_for(lambda p: p.alive() >= names, f"{node.name} seeing {sorted(names)} alive")


def test_five_namespaces_discover_each_other_and_see_a_kill_9_and_a_restart(
    tmp_path: Path,
) -> None:
    with mesh_lab(5, tmp_path) as (lab, nodes, cluster):
        converged(nodes)
        victim = nodes[4]
        before = victim.ready()["incarnation"]
        victim.proc.kill()
        victim.proc.wait(timeout=BOUND)
        for node in nodes[:4]:
            node.wait_for(lambda p: p.status("n4") == "failed", f"{node.name} seeing n4 failed")
        again = NodeProc(lab, lab.namespaces[4], "n4", cluster, tmp_path)
        nodes[4] = again
        converged(nodes)
        assert again.ready()["incarnation"] > before
        for node in nodes[:4]:
            # The new life's incarnation, or one it refuted a suspicion with since (a probe
            # missed while it started); an alive member's bump alone emits no event.
            assert node.view()["n4"]["incarnation"] > before


@pytest.mark.skipif(firewall_tool() is None, reason="partitions need nftables or iptables")
def test_a_partition_splits_the_view_and_healing_merges_it(tmp_path: Path) -> None:
    with mesh_lab(5, tmp_path) as (lab, nodes, _):
        converged(nodes)
        left, right = nodes[:2], nodes[2:]
        lab.partition(lab.namespaces[:2], lab.namespaces[2:])
        for side, other in ((left, right), (right, left)):
            for node in side:
                for o in other:
                    node.wait_for(
                        lambda p, o=o: p.status(o.name) == "failed",
                        f"{node.name} seeing {o.name} failed across the partition",
                    )
                assert node.alive() >= {x.name for x in side}
        lab.heal()
        converged(nodes)
