"""``ember top``: the busiest processes across a cluster, live (observer_cli's top-N)."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from rich.console import Console
from rich.live import Live
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

MIN_INTERVAL = 1.0
"""``ember top`` refreshes at most once a second (as observer_cli)."""
WARN = 0.85
"""A mailbox at this fraction of the longest one shown is drawn red (observer_cli's 85%)."""


def add_top_command(sub: Any) -> None:
    top = sub.add_parser("top", help="the busiest processes across a cluster, live")
    add_admin_client_arguments(top)
    top.add_argument(
        "--by", choices=["mailbox", "rate"], default="mailbox", help="sort key (default mailbox)"
    )
    top.add_argument("-n", type=int, default=20, help="rows (default 20)")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one table and exit")
    top.set_defaults(run=cmd_top)


def cmd_top(args: argparse.Namespace) -> int:
    token = token_of(args)
    if args.interval < MIN_INTERVAL:
        raise SystemExit(f"ember: --interval must be at least {MIN_INTERVAL} s")
    if not 1 <= args.n <= 1000:
        raise SystemExit("ember: -n must be in 1..1000")
    return run(lambda: _top(args, token))


class Sampler:
    """Keeps the previous sample of every process seen, to turn message counts into rates."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def rows(self, answers: dict[str, Any], now: float, n: int, by: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: dict[str, tuple[float, int]] = {}
        for node, answer in answers.items():
            if isinstance(answer, AdminUnreachable):
                continue
            for p in answer["processes"]:
                key = p["pid"]
                prev = self._last.get(key)
                rate = (
                    (p["messages"] - prev[1]) / (now - prev[0]) if prev and now > prev[0] else None
                )
                seen[key] = (now, p["messages"])
                rows.append({**p, "admin": node, "rate": rate})
        self._last = seen
        key = "mailbox" if by == "mailbox" else "rate"
        rows.sort(key=lambda r: (r[key] or 0, r["messages"]), reverse=True)
        return rows[:n]


def table(rows: list[dict[str, Any]], unreachable: list[str], by: str) -> Table:
    """The top table: one row per process, red past 85% of the longest mailbox shown."""
    longest = max((r["mailbox"] for r in rows), default=0)
    t = Table(title=f"ember top - by {by} - {time.strftime('%H:%M:%S')}")
    for col in ("pid", "name", "behaviour", "status", "mailbox", "msg/s", "messages"):
        t.add_column(col, justify="right" if col in ("mailbox", "msg/s", "messages") else "left")
    for r in rows:
        hot = longest > 0 and r["mailbox"] >= WARN * longest and r["mailbox"] > 0
        t.add_row(  # names and pids as plain text: a "[" in them is not markup
            Text(r["pid"]),
            Text(r["name"] or ""),
            Text(r["behaviour"].rsplit(".", 1)[-1]),
            r["status"],
            Text(str(r["mailbox"]), "red" if hot else ""),
            "-" if r["rate"] is None else f"{r['rate']:,.0f}",
            f"{r['messages']:,}",
        )
    if unreachable:
        t.caption = Text("unreachable: " + ", ".join(unreachable))
    return t


async def _top(args: argparse.Namespace, token: str) -> int:
    nodes = nodes_of(args)
    sampler = Sampler()
    # By rate, each node's most active processes are asked for (by messages handled), a
    # superset of the fastest ones now unless a quiet veteran outranks a busy newcomer.
    query = f"/api/v1/processes?top={min(1000, args.n * 5)}&by="
    query += "mailbox" if args.by == "mailbox" else "messages"
    console = Console(highlight=False)
    async with AdminClient(token, args.timeout) as client:

        async def frame() -> Table:
            answers = await client.get_all(nodes, query)
            bad = [n for n, a in answers.items() if isinstance(a, AdminUnreachable)]
            return table(sampler.rows(answers, time.monotonic(), args.n, args.by), bad, args.by)

        if args.once:
            first = await frame()
            if args.by == "rate":
                await asyncio.sleep(args.interval)
                first = await frame()
            console.print(first)
            return 0
        with Live(await frame(), console=console, auto_refresh=False) as live:
            try:
                while True:
                    await asyncio.sleep(args.interval)
                    live.update(await frame(), refresh=True)
            except asyncio.CancelledError:
                return 0
