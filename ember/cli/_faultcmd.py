"""``ember fault``: inject faults into a node started with ``--chaos``, from another process.

    ember fault --node n1@127.0.0.1:7001 --cookie-file F partition n2 n3
    ember fault --node n1@127.0.0.1:7001 --cookie-file F delay 10-50ms
    ember fault --node n1@127.0.0.1:7001 --cookie-file F drop 0.1
    ember fault --node n1@127.0.0.1:7001 --cookie-file F disk 200ms [--fail 0.5]
    ember fault --node n1@127.0.0.1:7001 --cookie-file F clock 2.0
    ember fault --node n1@127.0.0.1:7001 --cookie-file F heal [n2 ...]
    ember fault --node n1@127.0.0.1:7001 --cookie-file F clear | status

Each prints the node's fault state after the change (``--json`` for one JSON object) and exits
0; 1 if the node refused (not started with ``--chaos``, a bad value) or could not be reached.
A partition is made by telling each side: ``partition`` cuts the named peers off at this node
only, both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

from .._errors import EmberError, UsageError
from ..actors import run
from ..transport._faults import FaultState
from ..transport._transport import Transport
from ._client import add_client_arguments, client_node, connect_once, describe, read_cookie

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*$")


def add_fault_command(sub: Any) -> None:
    fault = sub.add_parser(
        "fault",
        help="inject faults (partition, delay, drop, disk, clock) into a node started with --chaos",
        description="Change the faults a node started with --chaos injects at its transport. "
        "A partition is made by telling each side.",
    )
    add_client_arguments(fault)
    fault.add_argument("--json", action="store_true", help="print the state as one JSON object")
    actions = fault.add_subparsers(dest="action", required=True)
    partition = actions.add_parser("partition", help="cut these peers off at the node, both ways")
    partition.add_argument("peers", nargs="+", metavar="PEER", help="the peers' node names")
    heal = actions.add_parser("heal", help="lift the partition (from these peers, or all)")
    heal.add_argument("peers", nargs="*", metavar="PEER", help="the peers' node names (none: all)")
    delay = actions.add_parser("delay", help="delay what the node writes: 20ms, 10-50ms, 0")
    delay.add_argument("range", metavar="LOW[-HIGH]", help="a delay or a range: 20ms, 10-50ms, 0")
    drop = actions.add_parser("drop", help="lose what the node sends with this probability")
    drop.add_argument("probability", type=float, help="from 0 (none) to 1 (everything)")
    disk = actions.add_parser("disk", help="slow (and fail) the node's Raft saves: 200ms, 0")
    disk.add_argument("latency", help="what each save waits first: 200ms, 0.5s, 0")
    disk.add_argument(
        "--fail", type=float, default=0.0, metavar="P", help="and fails with probability P"
    )
    clock = actions.add_parser("clock", help="run the node's timers at a rate: 2, 0.5, 1")
    clock.add_argument("rate", type=float, help="from 0.1 to 10 (1: the true rate)")
    actions.add_parser("clear", help="turn every fault off")
    actions.add_parser("status", help="print the faults and their counters")
    fault.set_defaults(run=cmd_fault)


def parse_delay(text: str) -> tuple[float, float]:
    """``"20ms"`` -> (0.02, 0.02); ``"10-50ms"`` -> (0.01, 0.05); ``"0.5-1s"``; ``"0"``."""
    low_text, sep, high_text = text.partition("-")
    high_match = _DURATION.match(high_text if sep else low_text)
    low_match = _DURATION.match(low_text)
    if low_match is None or high_match is None:
        raise UsageError(f"a delay looks like 20ms, 10-50ms or 0.5s, not {text!r}")
    unit = high_match.group(2) or low_match.group(2) or "s"  # "10-50ms": the unit of both

    def seconds(match: re.Match[str]) -> float:
        scale = 0.001 if (match.group(2) or unit) == "ms" else 1.0
        return float(match.group(1)) * scale

    return seconds(low_match), seconds(high_match)


def request_of(args: argparse.Namespace) -> dict[str, Any]:
    """The fault request (``Faults.apply``'s map) a command line stands for."""
    action = args.action
    if action == "partition":
        return {"op": "set", "partition": args.peers}
    if action == "heal":
        return {"op": "heal", "peers": args.peers}
    if action == "delay":
        return {"op": "set", "delay": list(parse_delay(args.range))}
    if action == "drop":
        return {"op": "set", "drop": args.probability}
    if action == "disk":
        latency = parse_delay(args.latency)[0]
        return {"op": "set", "disk_latency": latency, "disk_failures": args.fail}
    if action == "clock":
        return {"op": "set", "clock_rate": args.rate}
    if action == "clear":
        return {"op": "clear"}
    return {"op": "state"}


def format_state(state: FaultState) -> str:
    """A fault state as a few aligned lines."""
    low, high = state.delay
    rows = [
        ("node", state.node),
        ("fault injection", "enabled" if state.enabled else "disabled"),
        ("partitioned from", " ".join(sorted(state.partitioned)) or "-"),
        ("delay", f"{low * 1000:g}-{high * 1000:g} ms" if high else "-"),
        ("drop", f"{state.drop:g}" if state.drop else "-"),
        ("disk", _disk(state)),
        ("clock rate", f"{state.clock_rate:g}x" if state.clock_rate != 1 else "-"),
        (
            "counts",
            f"dropped {state.dropped}, delayed {state.delayed}, blocked frames "
            f"{state.blocked_frames}, blocked reads {state.blocked_reads}, blocked connections "
            f"{state.blocked_connections}, disk delayed {state.disk_delayed}, disk failed "
            f"{state.disk_failed}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _disk(state: FaultState) -> str:
    parts = []
    if state.disk_latency:
        parts.append(f"+{state.disk_latency * 1000:g} ms a save")
    if state.disk_failures:
        parts.append(f"{state.disk_failures:g} of saves fail")
    return ", ".join(parts) or "-"


def cmd_fault(args: argparse.Namespace) -> int:
    cookie = read_cookie(args.cookie_file)
    try:
        request = request_of(args)
        state = run(lambda: ask(args, cookie, request))
    except (EmberError, TimeoutError, OSError) as exc:
        print(f"ember: fault on {args.node}: {describe(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(state.as_dict()) if args.json else format_state(state))
    return 0


async def ask(args: argparse.Namespace, cookie: str, request: dict[str, Any]) -> FaultState:
    node = client_node(args, cookie)
    try:
        async with asyncio.timeout(args.timeout):  # the connect too: a dead node never answers
            name = await connect_once(node, args)
            assert isinstance(node.transport, Transport)
            return await node.transport.faults.channel.ask(name, request, args.timeout)
    finally:
        await node.stop()
