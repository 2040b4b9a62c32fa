"""``ember chaos run FILE`` and ``ember chaos list``: chaos scenarios from the command line.

``run`` exits 0 when every check is valid, 1 when one is invalid, 2 when one is unknown (as
Jepsen), and 3 when the run could not happen (a bad scenario file, a fault the driver lacks).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .._errors import EmberError

EXIT_CANNOT_RUN = 3


def add_chaos_commands(sub: Any) -> None:
    chaos = sub.add_parser("chaos", help="chaos scenarios: faults, workloads, checkers, reports")
    cmds = chaos.add_subparsers(dest="chaos_cmd", required=True)
    run = cmds.add_parser("run", help="run a scenario; exit 0 valid, 1 invalid, 2 unknown")
    run.add_argument("scenario", help="a scenario file, or the name of a bundled one")
    run.add_argument(
        "--driver",
        default="sim",
        choices=["sim", "processes", "netns"],
        help="sim: one process, virtual time, a seed replays (default); processes: node "
        "processes on loopback; netns: nodes in network namespaces (root)",
    )
    run.add_argument("--seed", type=int, help="the run's seed (default: the scenario's)")
    run.add_argument("--out", type=Path, help="run directory (default: chaos-runs/...)")
    run.add_argument("--quiet", action="store_true", help="no live display")
    run.set_defaults(run=cmd_chaos_run)
    lst = cmds.add_parser("list", help="the bundled scenarios, one a line")
    lst.set_defaults(run=cmd_chaos_list)


class RichProgress:
    """The live display: elapsed of total, operations by outcome, the faults on now."""

    def __init__(self, live: Live, title: str) -> None:
        self.live = live
        self.title = title
        self.started = time.monotonic()

    def update(
        self, elapsed: float, total: float, tally: dict[str, int], faults: list[str]
    ) -> None:
        table = Table(title=self.title, show_header=False, box=None)
        done = min(1.0, elapsed / total) if total else 1.0
        bar = "█" * int(done * 30) + "░" * (30 - int(done * 30))
        wall = time.monotonic() - self.started
        table.add_row("run", f"{bar} {elapsed:6.1f} / {total:.0f} s (wall {wall:.0f} s)")
        table.add_row(
            "operations",
            f"[blue]ok {tally.get('ok', 0)}[/]  [magenta]fail {tally.get('fail', 0)}[/]  "
            f"[yellow]info {tally.get('info', 0)}[/]",
        )
        table.add_row("faults", ", ".join(faults) if faults else "none")
        self.live.update(table)


def cmd_chaos_run(args: argparse.Namespace) -> int:
    from ..chaos._api import find_scenario, run_chaos
    from ..chaos._scenario import load_scenario

    console = Console(stderr=True)
    try:
        scenario = load_scenario(find_scenario(args.scenario))
        command = ["ember", "chaos", "run", args.scenario, "--driver", args.driver]
        command += ["--seed", str(args.seed if args.seed is not None else scenario.seed)]
        live = None
        if not args.quiet and console.is_terminal:
            live = Live(console=console, refresh_per_second=4, transient=True)
        with live if live is not None else contextlib.nullcontext():
            progress = RichProgress(live, f"{scenario.name} on {args.driver}") if live else None
            result, summary, out = run_chaos(
                scenario, driver=args.driver, seed=args.seed, out=args.out, progress=progress,
                command=command,
            )  # fmt: skip
    except EmberError as exc:
        print(f"ember: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    for check in result.checks:
        print(f"{check.validity.value:>8}  {check.name:<16} {check.summary}")
    print(f"{summary['validity']}: {out / 'report.html'}")
    print(f"replay: {summary['replay']}")
    return result.validity.exit_code


def cmd_chaos_list(args: argparse.Namespace) -> int:
    from ..chaos._api import bundled_scenarios

    try:
        scenarios = bundled_scenarios()
    except EmberError as exc:
        print(f"ember: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    width = max((len(s.name) for s in scenarios), default=0)
    for s in scenarios:
        first = s.description.strip().splitlines()[0] if s.description.strip() else ""
        print(f"{s.name:<{width}}  {first}")
    return 0
