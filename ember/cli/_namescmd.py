"""``ember names`` and ``ember groups``: the registry and the process groups as one node sees
them (like ``ember members``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from .._errors import EmberError
from ..actors import run
from ..registry import RegistryConfig
from ._client import add_client_arguments, client_node, connect_once, describe, read_cookie
from ._table import format_rows


def add_names_commands(sub: Any) -> None:
    names = sub.add_parser("names", help="print the registered names as a node sees them")
    _client_arguments(names)
    names.add_argument(
        "--tier", choices=["local", "eventual", "consistent"], help="one tier (default: all)"
    )
    names.set_defaults(run=cmd_names)
    groups = sub.add_parser("groups", help="print the pg groups as a node sees them")
    _client_arguments(groups)
    groups.add_argument("--scope", help="the pg scope (default: the node's default scope)")
    groups.set_defaults(run=cmd_groups)


def _client_arguments(parser: Any) -> None:
    add_client_arguments(parser)
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


def cmd_names(args: argparse.Namespace) -> int:
    def row(r: dict[str, Any]) -> tuple[str, ...]:
        token = "" if r["token"] is None else str(r["token"])
        meta = "" if r["meta"] is None else json.dumps(r["meta"], default=repr)
        return (r["name"], r["tier"], r["pid"], token, meta)

    return _show(args, "cli_names", [args.tier], ("Name", "Tier", "Pid", "Token", "Meta"), row)


def cmd_groups(args: argparse.Namespace) -> int:
    def row(r: dict[str, Any]) -> tuple[str, ...]:
        return (r["group"], str(len(r["members"])), str(r["local"]), ",".join(r["nodes"]))

    return _show(args, "cli_groups", [args.scope], ("Group", "Members", "Local", "Nodes"), row)


def _show(
    args: argparse.Namespace,
    op: str,
    op_args: list[Any],
    header: tuple[str, ...],
    row: Callable[[dict[str, Any]], tuple[str, ...]],
) -> int:
    """Ask the node, then print its rows as JSON or as a table."""
    rows = _ask(args, op, op_args)
    if rows is None:
        return 1
    if args.json:
        print(json.dumps(rows, default=repr))
    else:
        print(format_rows([header, *(row(r) for r in rows)]))
    return 0


def _ask(args: argparse.Namespace, op: str, op_args: list[Any]) -> Any:
    cookie = read_cookie(args.cookie_file)
    try:
        return run(lambda: _query(args, cookie, op, op_args))
    except (EmberError, TimeoutError, OSError) as exc:
        print(f"ember: cannot ask {args.node}: {describe(exc)}", file=sys.stderr)
        return None


async def _query(args: argparse.Namespace, cookie: str, op: str, op_args: list[Any]) -> Any:
    node = client_node(args, cookie, registry=RegistryConfig(replicate=False))
    try:
        async with asyncio.timeout(args.timeout):
            name = await connect_once(node, args)
            return await node.names.rpc.call(name, op, op_args, args.timeout)
    finally:
        await node.stop()
