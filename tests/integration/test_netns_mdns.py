"""mDNS discovery between network namespaces (a bridge and veths, built by ``netns.py``).

Each namespace runs ``mdns_peer.py``, a process with one ``MdnsDiscovery`` printing the peers it
finds. Needs root and iproute2 (skipped otherwise); the partition test needs nftables or
iptables.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .netns import JsonLines, Netns, NetnsLab, firewall_tool, netns_lab, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

PEER = str(Path(__file__).with_name("mdns_peer.py"))
PORT = 7946
BOUND = 30.0  # generous: probing takes 1.2 s, the machine is small and shared


class Peer(JsonLines):
    """One mdns_peer.py process."""

    def __init__(self, lab: NetnsLab, ns: Netns, cluster: str, node: str, *extra: str) -> None:
        argv = [sys.executable, PEER, "--cluster", cluster, "--node", node]
        argv += ["--host", ns.address, "--port", str(PORT), *extra]
        super().__init__(lab.popen(ns, argv, stdin=subprocess.PIPE), node, BOUND)
        self.node = node

    def found(self) -> set[str]:
        return {e["name"] for e in self.events if e["event"] == "found"}

    def started(self) -> bool:
        # A browser may report a peer before the "started" line: order is not guaranteed.
        return any(e["event"] == "started" for e in self.events)

    def stop(self) -> dict[str, Any]:
        """Close stdin (the peer says goodbye and exits); its final statistics."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.wait_for(lambda p: p.events and p.events[-1]["event"] == "stopped", "stop")
        assert self.proc.wait(timeout=BOUND) == 0
        stats: dict[str, Any] = self.events[-1]["stats"]
        return stats


def test_peers_in_three_namespaces_find_each_other_only_within_their_cluster() -> None:
    cluster = f"ns-{secrets.token_hex(4)}"
    with netns_lab(4) as lab:
        members = [
            Peer(lab, ns, cluster, f"n{ns.index}", *(["--probe"] if ns.index == 0 else []))
            for ns in lab.namespaces[:3]
        ]
        stranger = Peer(lab, lab.namespaces[3], f"other-{cluster}", "n0")  # same node name
        for peer in members:
            others = {p.node for p in members} - {peer.node}
            peer.wait_for(lambda p, o=others: p.found() >= o, f"finding {others}")
        for peer in members:
            found = [e for e in peer.events if e["event"] == "found"]
            assert {e["name"] for e in found} == {p.node for p in members} - {peer.node}
            by_name = {e["name"]: e["address"] for e in found}
            for ns, other in zip(lab.namespaces, members, strict=False):
                if other is not peer:
                    assert by_name[other.node] == f"{ns.address}:{PORT}"
        stranger.wait_for(Peer.started, "start")
        # kill -9 (no goodbye: the others keep its records) and restart under the same name:
        # probing must not mistake the others' cached records of it for a live duplicate.
        members[1].proc.kill()
        members[1].proc.wait(timeout=BOUND)
        members[1] = Peer(lab, lab.namespaces[1], cluster, "n1", "--probe")
        members[1].wait_for(lambda p: p.found() == {"n0", "n2"}, "the restarted n1 meeting all")
        stats = [peer.stop() for peer in members]
        assert all(s["ignored_other_cluster"] >= 1 for s in stats), stats
        assert stranger.found() == set()
        assert stranger.stop()["ignored_other_cluster"] >= 3


def test_default_interface_choice_needs_a_multicast_route() -> None:
    cluster = f"route-{secrets.token_hex(4)}"
    with netns_lab(2, multicast_route=False) as lab:
        a, b = lab.namespaces
        without = Peer(lab, a, cluster, "a", "--interfaces", "default")
        without.wait_for(lambda p: p.events, "an error")
        assert without.events[0]["event"] == "error"
        assert "224.0.0.0/4" in without.events[0]["error"]
        assert without.proc.wait(timeout=BOUND) == 2
        # "auto" joins the group on the interface holding the host address: no route needed.
        peers = [Peer(lab, ns, cluster, ns.name) for ns in (a, b)]
        peers[0].wait_for(lambda p: p.found() == {b.name}, "finding b without a route")
        peers[1].wait_for(lambda p: p.found() == {a.name}, "finding a without a route")


@pytest.mark.skipif(firewall_tool() is None, reason="partitions need nftables or iptables")
def test_a_partition_hides_peers_until_it_heals() -> None:
    cluster = f"part-{secrets.token_hex(4)}"
    with netns_lab(3) as lab:
        ns0, ns1, ns2 = lab.namespaces
        n0 = Peer(lab, ns0, cluster, "n0")
        n1 = Peer(lab, ns1, cluster, "n1")
        n2 = Peer(lab, ns2, cluster, "n2")
        for peer in (n0, n1, n2):
            peer.wait_for(Peer.started, "start")
        lab.partition([ns0], [ns1, ns2])
        # A newcomer in ns0 re-asks every second, like a lonely node's rejoin loop.
        late = Peer(lab, ns0, cluster, "late", "--requery", "1")
        late.wait_for(lambda p: "n0" in p.found(), "finding n0 on its own side")
        n1.wait_for(lambda p: "n2" in p.found(), "n1 finding n2 on its side")
        late.observe(3.0)  # an absence needs a window: three requery rounds
        assert late.found() == {"n0"}, late.events
        n1.drain()
        assert "late" not in n1.found()
        lab.heal()
        late.wait_for(lambda p: p.found() == {"n0", "n1", "n2"}, "finding all after the heal")
