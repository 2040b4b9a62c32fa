"""``ember status``: one screen of a cluster from its nodes' admin APIs (``--json`` too)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..actors import run
from ._adminclient import (
    AdminClient,
    AdminUnreachable,
    add_admin_client_arguments,
    nodes_of,
    token_of,
)

_DROPS = ("dropped_dead", "mailbox_rejected", "mailbox_dropped", "dropped_on_exit")


def add_status_command(sub: Any) -> None:
    status = sub.add_parser("status", help="one screen of a cluster, from its admin APIs")
    add_admin_client_arguments(status)
    status.add_argument(
        "--window",
        type=float,
        default=1.0,
        help="seconds between the two samples rates are computed from (0: no rates)",
    )
    status.add_argument("--json", action="store_true", help="JSON instead of tables")
    status.set_defaults(run=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    token = token_of(args)
    if args.window < 0:
        raise SystemExit("ember: --window must be >= 0")
    report = run(lambda: gather(nodes_of(args), token, args.timeout, args.window))
    if args.json:
        print(json.dumps(report, default=str))
    else:
        render(report, Console(highlight=False, soft_wrap=True))
    return 0 if not report["unreachable"] else 1


async def gather(nodes: list[str], token: str, per_request: float, window: float) -> dict[str, Any]:
    """Every node's summary (and, with ``window``, rates from a second one): the report
    ``--json`` prints (schema ``StatusReport`` in ``docs/operability.md``)."""
    async with AdminClient(token, per_request) as client:
        first = await client.get_all(nodes, "/api/v1/summary?top=5")
        t0 = time.monotonic()
        second: dict[str, Any] = {}
        if window > 0:
            await asyncio.sleep(window)
            second = await client.get_all(nodes, "/api/v1/summary?top=5")
        elapsed = time.monotonic() - t0
    report: dict[str, Any] = {"version": 1, "nodes": {}, "rates": {}, "unreachable": {}}
    for node in nodes:
        latest = second.get(node, first[node])
        if isinstance(latest, AdminUnreachable) or isinstance(first[node], AdminUnreachable):
            bad = latest if isinstance(latest, AdminUnreachable) else first[node]
            report["unreachable"][node] = str(bad)
            continue
        report["nodes"][node] = latest
        if node in second:
            report["rates"][node] = rates(first[node], latest, elapsed)
    return report


def rates(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, float]:
    """Messages, drops and frames per second between two summaries of one node."""
    a, b = before["node"]["counters"], after["node"]["counters"]
    ta, tb = before["sections"]["transport"], after["sections"]["transport"]

    def per_s(x: float, y: float) -> float:
        return round(max(0.0, y - x) / seconds, 1) if seconds > 0 else 0.0

    out = {
        "messages_per_s": per_s(a["messages_processed"], b["messages_processed"]),
        "drops_per_s": per_s(sum(a[k] for k in _DROPS), sum(b[k] for k in _DROPS)),
    }
    if ta.get("running") and tb.get("running"):
        out["frames_sent_per_s"] = per_s(ta["frames_sent"], tb["frames_sent"])
        out["transport_drops_per_s"] = per_s(ta["dropped"], tb["dropped"])
    return out


def render(report: dict[str, Any], console: Console) -> None:
    """The report as tables."""
    nodes: dict[str, Any] = report["nodes"]
    for node, error in report["unreachable"].items():
        console.print(Text.assemble(("unreachable", "red"), f" {node}: {error}"))
    if not nodes:
        console.print("no node answered")
        return
    seen_by, first = next(iter(nodes.items()))
    members = Table(title=f"Members (as {first['node']['name']} at {seen_by} sees them)")
    for col in ("name", "address", "status", "incarnation"):
        members.add_column(col)
    for m in first["members"]:
        style = {"alive": "green", "suspect": "yellow", "failed": "red"}.get(m["status"], "")
        members.add_row(
            Text(m["name"]), Text(m["address"]), Text(m["status"], style), str(m["incarnation"])
        )
    console.print(members)

    table = Table(title="Nodes")
    for col in ("node", "admin", "processes", "msg/s", "drops/s", "peers", "queued", "uptime"):
        table.add_column(col)
    for addr, s in nodes.items():
        r = report["rates"].get(addr, {})
        t = s["sections"]["transport"]
        table.add_row(
            Text(s["node"]["name"]),
            Text(addr),
            str(s["node"]["processes"]),
            _num(r.get("messages_per_s")),
            _num(r.get("drops_per_s")),
            str(len(t.get("connected", []))) if t.get("running") else "-",
            str(t.get("queued", "-")),
            f"{s['node']['uptime_s']:.0f} s",
        )
    console.print(table)

    groups: dict[str, dict[str, Any]] = {}
    for s in nodes.values():
        raft = s["sections"]["raft"]
        for row in raft.get("groups", []) if raft.get("running") else []:
            g = groups.setdefault(row["group"], {"members": 0, **row})
            g["members"] += 1
            if row["role"] == "leader":
                g.update(row, members=g["members"])
    raft_table = Table(title="Raft groups")
    for col in ("group", "leader", "term", "commit", "applied", "members here", "max lag"):
        raft_table.add_column(col)
    for name, g in sorted(groups.items()):
        raft_table.add_row(
            Text(name),
            Text(g["leader"]) if g["leader"] else Text("none", "red"),
            str(g["term"]),
            str(g["commit"]),
            str(g["applied"]),
            str(g["members"]),
            str(g["max_lag"]),
        )
    console.print(raft_table if groups else "Raft groups: none")
    for section in ("names", "pg", "contracts"):
        states = [s["sections"][section] for s in nodes.values()]
        running = [st for st in states if st.get("running")]
        line = describe(section, running[0]) if running else "not running"
        console.print(Text(f"{section}: {line}"))
    sys.stdout.flush()


def describe(section: str, summary: dict[str, Any]) -> str:
    """One line for a section's summary (as the first node reports it)."""
    if section == "names" and "names" in summary:
        tiers = ", ".join(f"{n} {tier}" for tier, n in summary["names"].items())
        return f"{tiers}; {summary.get('conflicts', 0)} conflicts"
    if section == "pg" and "scopes" in summary:
        scopes = summary["scopes"].items()
        return "; ".join(
            f"scope {name}: {c['groups']} groups, {c['local_members']} local members"
            for name, c in scopes
        )
    if section == "contracts" and "coordinators" in summary:
        return (
            f"{summary['coordinators']} running; {summary['succeeded']} succeeded, "
            f"{summary['failed']} failed"
        )
    details = {k: v for k, v in summary.items() if k != "running"}
    return json.dumps(details, default=str)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"
