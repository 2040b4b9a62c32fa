"""The mesh's metrics, admin views and readiness, read from the SWIM counters at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from ..observability import AdminRequest, AdminRoute, Collector, Metric, counter, gauge
from ._messages import MemberStatus
from ._shell import Membership

__all__ = ["MeshProbe"]

_SWIM_COUNTERS = {
    "probes": "Probe rounds started.",
    "probes_failed": "Probes that got no ack at all (the target became suspect).",
    "indirect_probes": "Indirect ping requests sent.",
    "tcp_fallbacks": "Fallback pings sent over TCP.",
    "suspicions": "Members this node started suspecting.",
    "failures": "Members declared failed (here or learnt).",
    "refutations": "Suspicions of this node that it refuted.",
    "push_pulls": "Full-state exchanges started.",
    "gossip_packets": "Gossip-only packets sent.",
}


class MeshProbe:
    """What the node's metrics and admin API see of its membership."""

    def __init__(self, mesh: Membership) -> None:
        self.mesh = mesh

    def collectors(self) -> Iterable[Collector]:
        return (self._collect,)

    def _collect(self) -> Iterator[Metric]:
        by_state = Counter(m.status.value for m in self.mesh.members())
        yield gauge(
            "ember_mesh_members",
            "Members as this node sees them, itself included, by state.",
            labels=["state"],
            samples=(((st.value,), by_state[st.value]) for st in MemberStatus),
        )
        stats = self.mesh.statistics()
        swim = stats.swim
        for field, doc in _SWIM_COUNTERS.items():
            yield counter(f"ember_mesh_{field}", doc, getattr(swim, field))
        yield gauge(
            "ember_mesh_false_positive_ratio",
            "Estimate of the suspicions that were wrong: 1 - failures / suspicions (0 with no "
            "suspicion yet).",
            _false_positive(swim.suspicions, swim.failures),
        )
        yield counter(
            "ember_mesh_packets",
            "Membership packets, by transport and direction.",
            labels=["transport", "direction"],
            samples=(
                (("udp", "sent"), stats.udp_sent),
                (("udp", "received"), stats.udp_received),
                (("tcp", "sent"), stats.tcp_sent),
                (("tcp", "received"), stats.tcp_received),
            ),
        )
        yield counter(
            "ember_mesh_packets_rejected",
            "Membership packets refused, by cause (auth: another cluster or cookie).",
            labels=["cause"],
            samples=((("auth",), stats.auth_failures), (("malformed",), stats.malformed)),
        )

    def ready(self) -> tuple[bool, str]:
        me = self.mesh.member(self.mesh.name)
        alive = sum(1 for m in self.mesh.members() if m.status is MemberStatus.ALIVE)
        if me is None or me.status is not MemberStatus.ALIVE:
            return False, "not an alive member of the mesh"
        return True, f"{alive} alive members"

    def admin_summary(self) -> dict[str, Any]:
        by_state = Counter(m.status.value for m in self.mesh.members())
        swim = self.mesh.statistics().swim
        return {
            "members": dict(by_state),
            "incarnation": self.mesh.incarnation,
            "suspicions": swim.suspicions,
            "failures": swim.failures,
            "false_positive_ratio": _false_positive(swim.suspicions, swim.failures),
        }

    def admin_routes(self) -> Iterable[AdminRoute]:
        return (AdminRoute("GET", "/statistics", self._statistics, "every membership counter"),)

    async def _statistics(self, req: AdminRequest) -> Any:
        return self.mesh.statistics().as_dict()


def _false_positive(suspicions: int, failures: int) -> float:
    if suspicions <= 0:
        return 0.0
    return round(max(0.0, 1.0 - failures / suspicions), 4)
