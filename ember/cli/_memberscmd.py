"""``ember members``: the membership as one node sees it, like ``consul members``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from .._errors import EmberError
from .._node import Node, parse_node_address
from ..actors import run
from ..mesh._messages import Member
from ..mesh._shell import fetch_members
from ._nodecmd import read_cookie
from ._table import format_rows


def add_members_command(sub: Any) -> None:
    members = sub.add_parser("members", help="print the membership as a node sees it")
    members.add_argument("--node", required=True, metavar="NAME@HOST:PORT", help="node to ask")
    members.add_argument("--cookie-file", required=True, type=Path, help="file with the cookie")
    members.add_argument("--cluster", default="ember", help="cluster name (default: ember)")
    members.add_argument("--tls-dir", type=Path, help="directory made by `ember certs init`")
    members.add_argument(
        "--as",
        dest="client_name",
        help="node name this client uses (with --tls-dir: a name with a certificate there; "
        "default ember-cli-PID)",
    )
    members.add_argument("--timeout", type=float, default=5.0)
    members.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    members.set_defaults(run=cmd_members)


def cmd_members(args: argparse.Namespace) -> int:
    cookie = read_cookie(args.cookie_file)
    try:
        members = run(lambda: query(args, cookie))
    except (EmberError, TimeoutError, OSError) as exc:
        print(
            f"ember: cannot get the members of {args.node}: {str(exc) or 'no answer in time'}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps([m.as_dict() for m in members], default=repr))
    else:
        print(format_table(members))
    return 0


async def query(args: argparse.Namespace, cookie: str) -> tuple[Member, ...]:
    name, _, _ = parse_node_address(args.node)
    me = args.client_name or f"ember-cli-{os.getpid()}"
    ssl_server = ssl_client = None
    if args.tls_dir is not None:
        from ..transport._tls import client_context, server_context

        ssl_server = server_context(args.tls_dir, me)
        ssl_client = client_context(args.tls_dir, me)
    node = Node(
        me,
        cookie=cookie,
        cluster=args.cluster,
        connect=[args.node],
        ssl_server=ssl_server,
        ssl_client=ssl_client,
    )
    try:
        async with asyncio.timeout(args.timeout):  # the connect too: a dead node never answers
            await node.start()
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
