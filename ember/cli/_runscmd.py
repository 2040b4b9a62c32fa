"""``ember runs`` and ``ember run show ID``: contract runs as a node sees them (its local runs
and the durable store's), and the flags ``ember node start`` takes for its contracts service."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from typing import Any

from .._errors import EmberError
from ..actors import run
from ..contracts import Contract, ContractError, ContractsConfig, RunStatus, RunSummary
from ..contracts._stephost import HOST_NAME
from ._client import add_client_arguments, client_node, connect_once, describe, read_cookie
from ._table import format_rows

__all__ = ["add_contracts_arguments", "add_runs_commands", "contracts_config", "load_contracts"]


def add_contracts_arguments(parser: Any) -> None:
    """The contracts flags of ``ember node start`` (``docs/contracts.md``)."""
    parser.add_argument(
        "--contracts-store",
        metavar="NODE,NODE,...",
        help="the members of the durable contracts store (the same list on every node)",
    )
    parser.add_argument(
        "--contracts-load",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module and run its contract classes here (repeatable)",
    )
    parser.add_argument(
        "--contracts-deny",
        metavar="CAP,CAP,...",
        help="capabilities this node refuses to run steps with",
    )


def contracts_config(args: argparse.Namespace) -> ContractsConfig | None:
    """The :class:`ContractsConfig` the flags ask for (None: the defaults)."""
    store = _split(args.contracts_store)
    deny = _split(args.contracts_deny)
    if not store and not deny:
        return None
    return ContractsConfig(store=tuple(store) or None, deny=tuple(deny))


def load_contracts(modules: list[str]) -> list[type[Contract]]:
    """Import ``modules`` and return the compiled contract classes they define."""
    found: list[type[Contract]] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise SystemExit(f"ember: cannot import contracts module {name!r}: {exc}") from exc
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Contract)
                and value.__module__ == module.__name__
                and "__contract__" in vars(value)
            ):
                found.append(value)
    return found


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def add_runs_commands(sub: Any) -> None:
    runs = sub.add_parser("runs", help="list contract runs as a node sees them")
    _client_arguments(runs)
    runs.add_argument("--contract", help="only runs of this contract")
    runs.add_argument(
        "--status",
        choices=["running", "waiting", "succeeded", "failed", "cancelled", "unknown"],
        help="only runs in this state",
    )
    runs.add_argument("--limit", type=int, default=50, help="at most this many runs, newest first")
    runs.set_defaults(run=cmd_runs)
    show = sub.add_parser("run", help="one contract run").add_subparsers(
        dest="run_cmd", required=True
    )
    one = show.add_parser("show", help="a run's state, steps, events and error")
    one.add_argument("run_id", help="the run's id (as start returned it, or its run_id=)")
    _client_arguments(one)
    one.set_defaults(run=cmd_run_show)


def _client_arguments(parser: Any) -> None:
    add_client_arguments(parser, timeout=10.0)
    parser.add_argument("--json", action="store_true", help="JSON instead of text")


def cmd_runs(args: argparse.Namespace) -> int:
    query = {"contract": args.contract, "status": args.status, "limit": args.limit}
    found = _ask(args, ["runs", query])
    if found is None:
        return 1
    if args.json:
        print(json.dumps(found))
        return 0
    print(format_runs([RunSummary.of(s) for s in found]))
    return 0


def cmd_run_show(args: argparse.Namespace) -> int:
    record = _ask(args, ["show", {"run_id": args.run_id}])
    if record is None:
        return 1
    status = RunStatus.of(record)
    print(json.dumps(status.as_dict(), default=repr) if args.json else status.format())
    return 0


def _ask(args: argparse.Namespace, request: list[Any]) -> Any:
    cookie = read_cookie(args.cookie_file)
    try:
        return run(lambda: query(args, cookie, request))
    except ContractError as exc:  # the node's typed answer (e.g. RunNotFound): named as such
        print(f"ember: {args.node}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    except (EmberError, TimeoutError, OSError) as exc:
        print(f"ember: {args.node}: {describe(exc)}", file=sys.stderr)
        return None


async def query(args: argparse.Namespace, cookie: str, request: list[Any]) -> Any:
    """Ask ``args.node``'s contracts service (through its step host) from a client node."""
    me = client_node(args, cookie)
    try:
        async with asyncio.timeout(args.timeout):
            name = await connect_once(me, args)
            return await me.call((HOST_NAME, name), ("query", *request), timeout=args.timeout)
    finally:
        await me.stop()


def format_runs(runs: list[RunSummary]) -> str:
    """Runs as an aligned text table."""
    rows = [("Run", "Contract", "Status", "Owner", "Waiting on", "Reason")]
    for r in runs:
        rows.append(
            (
                r.run_id,
                f"{r.contract} v{r.version}",
                r.status,
                r.owner or "-",
                ",".join(r.waiting_on) or "-",
                r.reason[:60],
            )
        )
    return format_rows(rows)
