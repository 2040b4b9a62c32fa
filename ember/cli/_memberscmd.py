"""``ember members``: the membership as one node sees it, like ``consul members``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from .._errors import EmberError
from .._node import parse_node_address
from ..actors import run
from ..mesh._messages import Member
from ..mesh._shell import fetch_members
from ._client import add_client_arguments, client_node, connect_once, describe, read_cookie
from ._table import format_rows


def add_members_command(sub: Any) -> None:
    members = sub.add_parser("members", help="print the membership as a node sees it")
    add_client_arguments(members)
    members.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    members.set_defaults(run=cmd_members)


def cmd_members(args: argparse.Namespace) -> int:
    cookie = read_cookie(args.cookie_file)
    try:
        members = run(lambda: query(args, cookie))
    except (EmberError, TimeoutError, OSError) as exc:
        print(f"ember: cannot get the members of {args.node}: {describe(exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([m.as_dict() for m in members], default=repr))
    else:
        print(format_table(members))
        name = parse_node_address(args.node)[0]
        if not [m for m in members if m.name != name]:
            print(f"(node {name} knows no other member: it has no peers)")
    return 0


async def query(args: argparse.Namespace, cookie: str) -> tuple[Member, ...]:
    node = client_node(args, cookie)
    try:
        async with asyncio.timeout(args.timeout):  # the connect too: a dead node never answers
            name = await connect_once(node, args)
            assert node.transport is not None and node.dist is not None
            return await fetch_members(node.transport, node.dist, name, args.timeout)
    finally:
        await node.stop()


def format_table(members: tuple[Member, ...]) -> str:
    """Members as an aligned text table."""
    rows = [("Node", "Address", "Status", "Incarnation", "Meta")]
    for m in members:
        meta = ",".join(f"{k}={v}" for k, v in sorted(m.meta.items()))
        rows.append((m.name, m.address, m.status.value, str(m.incarnation), meta))
    return format_rows(rows)
