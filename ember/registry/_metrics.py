"""The registry's and pg's metrics and admin views, read from their statistics at scrape time.

Labels carry tiers and scopes (a handful, fixed by configuration), never names or groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..observability import AdminRequest, AdminRoute, Collector, Metric, counter, gauge, int_param
from ._eventual import EventualTier
from ._names import Names
from ._pg import ProcessGroups

__all__ = ["NamesProbe", "PgProbe"]

_GLOBAL_COUNTERS = {
    "registered": "Names registered in the tier by this node.",
    "released": "Names released in the tier by this node.",
    "conflicts": "Claims of this node that lost their name to a concurrent claimant.",
}
_GROUP_COMMIT = {
    "batch_writes": "Raft entries of registrations and unregistrations this node proposed.",
    "batched": "Registrations and unregistrations those entries carried (group commit).",
    "queue_full": "Registrations and unregistrations refused: the group commit queue was full.",
}


class NamesProbe:
    """What the node's metrics and admin API see of ``node.names``."""

    def __init__(self, names: Names) -> None:
        self.names = names

    def collectors(self) -> Iterable[Collector]:
        return (self._collect,)

    def _counts(self, stats: dict[str, Any]) -> dict[str, int]:
        counts = {"local": int(stats["local"])}
        for tier in self.names.tiers:
            counts[tier] = int(stats[tier].get("names", 0))
        return counts

    def _collect(self) -> Iterator[Metric]:
        stats = self.names.statistics()
        yield gauge(
            "ember_names",
            "Names registered, by tier, as this node sees them.",
            labels=["tier"],
            samples=(((t,), n) for t, n in self._counts(stats).items()),
        )
        for key, doc in _GLOBAL_COUNTERS.items():
            yield counter(
                f"ember_names_{key}",
                doc,
                labels=["tier"],
                samples=(((t,), stats[t].get(key, 0)) for t in self.names.tiers),
            )
        yield counter(
            "ember_names_fenced_drops",
            "Fenced messages dropped: their token was not the name's current one.",
            stats["fenced_drops"],
        )
        yield counter(
            "ember_names_malformed_frames",
            "Registry frames that were malformed.",
            stats["malformed"],
        )
        yield counter(
            "ember_names_unhandled_frames",
            "Registry frames of a kind this node takes no part in (a tier it does not run).",
            labels=["kind"],
            samples=(((k,), n) for k, n in stats["unhandled_frames"].items()),
        )
        consistent = stats.get("consistent")
        if consistent is not None:
            for key, doc in _GROUP_COMMIT.items():
                yield counter(f"ember_names_consistent_{key}", doc, consistent[key])

    def ready(self) -> tuple[bool, str]:
        """The eventual tier has pulled its live peers' state (``EventualTier.synced``)."""
        eventual = self.names.tiers.get("eventual")
        if not isinstance(eventual, EventualTier):
            return True, "no eventual tier to sync"
        ok, detail = eventual.synced()
        return ok, f"eventual tier: {detail}"

    def admin_summary(self) -> dict[str, Any]:
        stats = self.names.statistics()
        conflicts = sum(int(stats[t].get("conflicts", 0)) for t in self.names.tiers)
        return {"names": self._counts(stats), "conflicts": conflicts}

    def admin_routes(self) -> Iterable[AdminRoute]:
        return (
            AdminRoute("GET", "/statistics", self._statistics, "every registry counter"),
            AdminRoute("GET", "/registered", self._registered, "names by tier (?tier=&limit=N)"),
        )

    async def _statistics(self, req: AdminRequest) -> Any:
        return self.names.statistics()

    async def _registered(self, req: AdminRequest) -> Any:
        limit = int_param(req.query, "limit", 100, 1, 10_000)
        tier = req.query.get("tier")
        out = []
        for name in self.names.registered(tier)[:limit]:  # type: ignore[arg-type]
            reg = self.names.lookup(name, tier)  # type: ignore[arg-type]
            if reg is not None:
                out.append({"name": str(name), "tier": reg.tier, "pid": str(reg.pid)})
        return {"names": out, "limit": limit}


class PgProbe:
    """What the node's metrics and admin API see of ``node.pg``."""

    def __init__(self, pg: ProcessGroups) -> None:
        self.pg = pg

    def collectors(self) -> Iterable[Collector]:
        return (self._collect,)

    def _collect(self) -> Iterator[Metric]:
        stats = self.pg.statistics()
        scopes: dict[str, dict[str, Any]] = stats["scopes"]
        for key, doc in (
            ("groups", "Groups with members, by scope."),
            ("local_members", "Memberships of this node's processes, by scope."),
            ("monitors", "Scope and group monitors, by scope."),
        ):
            yield gauge(
                f"ember_pg_{key}",
                doc,
                labels=["scope"],
                samples=(((name,), s[key]) for name, s in sorted(scopes.items())),
            )
        yield gauge(
            "ember_pg_peers",
            "Peer scopes this node syncs with, by scope.",
            labels=["scope"],
            samples=(((name,), len(s["peers"])) for name, s in sorted(scopes.items())),
        )
        yield counter(
            "ember_pg_frames",
            "PG frames, by direction.",
            labels=["direction"],
            samples=((("sent",), stats["frames_sent"]), (("received",), stats["frames_received"])),
        )
        yield counter(
            "ember_pg_frames_dropped",
            "PG frames dropped, by cause (overflow: a full queue; the peer is resynced).",
            labels=["cause"],
            samples=(
                ((cause,), stats[cause])
                for cause in ("malformed", "stale", "unreachable", "overflows")
            ),
        )
        yield counter("ember_pg_resyncs", "Full syncs sent after an overflow.", stats["resyncs"])
        yield counter("ember_pg_broadcasts", "Broadcasts sent from this node.", stats["broadcasts"])
        yield counter(
            "ember_pg_broadcast_deliveries",
            "Broadcast messages delivered to members on this node.",
            stats["broadcast_deliveries"],
        )

    def admin_summary(self) -> dict[str, Any]:
        scopes = self.pg.statistics()["scopes"]
        return {
            "scopes": {
                name: {"groups": s["groups"], "local_members": s["local_members"]}
                for name, s in scopes.items()
            }
        }

    def admin_routes(self) -> Iterable[AdminRoute]:
        return (
            AdminRoute("GET", "/statistics", self._statistics, "every pg counter"),
            AdminRoute("GET", "/{scope}", self._groups, "a scope's groups and member counts"),
        )

    async def _statistics(self, req: AdminRequest) -> Any:
        return self.pg.statistics()

    async def _groups(self, req: AdminRequest) -> Any:
        scope = req.params["scope"]
        limit = int_param(req.query, "limit", 100, 1, 10_000)
        groups = self.pg.which_groups(scope)  # UnknownScope (an EmberError): 409
        return {
            "scope": scope,
            "groups": [
                {"group": str(g), "members": len(self.pg.get_members(g, scope))}
                for g in groups[:limit]
            ],
            "total": len(groups),
        }
