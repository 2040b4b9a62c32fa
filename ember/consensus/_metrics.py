"""Raft's metrics, admin views and readiness: every local member's status, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .._errors import UnknownName, UsageError
from ..observability import (
    AdminRequest,
    AdminRoute,
    Collector,
    Histogram,
    Metric,
    counter,
    gauge,
)
from ._host import RaftHost
from ._messages import Role
from ._shell import save_histogram

__all__ = ["RaftProbe"]

_ROLES = tuple(str(r) for r in Role)


class RaftProbe:
    """What the node's metrics and admin API see of its Raft groups (``node.raft``)."""

    def __init__(self, host: RaftHost) -> None:
        self.host = host

    def _statuses(self) -> list[tuple[Any, dict[str, Any]]]:
        return [(m, m.status()) for m in list(self.host.members.values()) if m.running]

    def collectors(self) -> Iterable[Collector]:
        return (self._collect,)

    def _collect(self) -> Iterator[Metric]:
        rows = self._statuses()
        lab = ["group", "member"]

        def per_member(key: str) -> Iterator[tuple[tuple[str, str], float]]:
            for _, st in rows:
                yield (st["group"], st["id"]), st[key]

        yield gauge("ember_raft_term", "Current term.", labels=lab, samples=per_member("term"))
        yield gauge(
            "ember_raft_role",
            "1 for the member's current role.",
            labels=[*lab, "role"],
            samples=(
                ((st["group"], st["id"], role), float(st["role"] == role))
                for _, st in rows
                for role in _ROLES
            ),
        )
        yield gauge(
            "ember_raft_commit_index",
            "Highest committed index.",
            labels=lab,
            samples=per_member("commit"),
        )
        yield gauge(
            "ember_raft_applied_index",
            "Highest index applied to the state machine.",
            labels=lab,
            samples=per_member("applied"),
        )
        yield gauge(
            "ember_raft_last_index",
            "Last index in the log.",
            labels=lab,
            samples=per_member("last_index"),
        )
        yield gauge(
            "ember_raft_follower_lag_entries",
            "Entries a follower is behind the leader (reported by the leader).",
            labels=["group", "follower"],
            samples=(
                ((st["group"], peer), p["lag"])
                for _, st in rows
                for peer, p in st["progress"].items()
                if peer != st["id"]
            ),
        )
        yield counter(
            "ember_raft_elections",
            "Times the member became leader.",
            labels=lab,
            samples=per_member("elections"),
        )
        yield counter(
            "ember_raft_saves",
            "Durable saves of the log and hard state.",
            labels=lab,
            samples=per_member("saves"),
        )
        yield gauge(
            "ember_raft_snapshot_bytes",
            "Size of the latest snapshot taken by the member.",
            labels=lab,
            samples=(((st["group"], st["id"]), m.snapshot_bytes) for m, st in rows),
        )
        yield gauge(
            "ember_raft_sessions",
            "Client sessions the member holds.",
            labels=lab,
            samples=per_member("sessions"),
        )
        # One histogram per node: the members share a disk, and a label per member would
        # multiply the buckets by the number of groups.
        yield Histogram.merge(save_histogram(), [m.save_seconds for m, _ in rows]).family()

    def ready(self) -> tuple[bool, str]:
        rows = self._statuses()
        leaderless = sorted(st["group"] for _, st in rows if st["leader"] is None)
        if leaderless:
            return False, f"no leader in {', '.join(leaderless)}"
        return True, f"{len(rows)} members with a leader"

    def admin_summary(self) -> dict[str, Any]:
        return {"groups": [_group_row(st) for _, st in self._statuses()]}

    def admin_routes(self) -> Iterable[AdminRoute]:
        return (
            AdminRoute(
                "GET", "/{group}", self._group, "full status of the local members of a group"
            ),
            AdminRoute(
                "POST",
                "/{group}/transfer",
                self._transfer,
                'transfer leadership: body {"to": member}',
                mutating=True,
            ),
        )

    async def _group(self, req: AdminRequest) -> Any:
        group = req.params["group"]
        found = [st for _, st in self._statuses() if st["group"] == group]
        if not found:
            raise UnknownName(group)
        return {"group": group, "members": found}

    async def _transfer(self, req: AdminRequest) -> Any:
        to = req.body.get("to") if isinstance(req.body, dict) else None
        if not isinstance(to, str):
            raise UsageError('send {"to": "<member id>"}')
        member = self.host.local_member(req.params["group"])
        member.transfer_leadership(to)
        return {"group": req.params["group"], "transfer_to": to}


def _group_row(st: dict[str, Any]) -> dict[str, Any]:
    lags = [p["lag"] for peer, p in st["progress"].items() if peer != st["id"]]
    return {
        "group": st["group"],
        "member": st["id"],
        "role": st["role"],
        "leader": st["leader"],
        "term": st["term"],
        "commit": st["commit"],
        "applied": st["applied"],
        "voters": len(st["voters"]),
        "max_lag": max(lags) if lags else 0,
    }
