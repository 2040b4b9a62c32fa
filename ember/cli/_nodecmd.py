"""``ember node start``: run one node until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from .._errors import EmberError
from .._node import Node
from ..actors import run
from ..actors._watchdog import DEFAULT_STALL_THRESHOLD
from ..observability import AdminConfig
from ..transport._config import TransportConfig
from ._app import AppHook, add_app_arguments, load_app, start_app
from ._client import read_cookie
from ._logs import setup_logging
from ._registryargs import add_registry_arguments, registry_config
from ._runscmd import add_contracts_arguments, contracts_config, load_contracts

log = logging.getLogger("ember.cli")


def add_node_commands(sub: Any) -> None:
    node = sub.add_parser("node", help="run a node").add_subparsers(dest="node_cmd", required=True)
    start = node.add_parser("start", help="start one node and run it until SIGTERM/SIGINT")
    start.add_argument("--name", required=True, help="node name (unique in the cluster)")
    start.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: any free)")
    start.add_argument("--cookie-file", required=True, type=Path, help="file with the cookie")
    start.add_argument("--cluster", default="ember", help="cluster name (default: ember)")
    start.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="NAME@HOST:PORT",
        help="a node to connect to at start (repeatable, or comma-separated)",
    )
    start.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long each --connect node may take to answer before the node exits 1 (default 30)",
    )
    add_mesh_arguments(start)
    start.add_argument("--tls-dir", type=Path, help="directory made by `ember certs init`")
    start.add_argument("--data-dir", type=Path, help="node data directory (default .ember/NAME)")
    start.add_argument(
        "--spawn-allow",
        action="append",
        default=None,
        metavar="PREFIX",
        help="a module other nodes may spawn actors from, with the modules below it ('app' "
        "allows app and app.x, not apple; repeatable; default: any)",
    )
    add_app_arguments(start)
    start.add_argument(
        "--stall-threshold",
        type=float,
        default=DEFAULT_STALL_THRESHOLD,
        metavar="SECONDS",
        help="log a block of the event loop longer than this, naming the process that held it "
        f"(default {DEFAULT_STALL_THRESHOLD}; 0 turns it off)",
    )
    start.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="least severe log level written (JSON lines on stderr; default info)",
    )
    start.add_argument(
        "--chaos",
        action="store_true",
        help="accept fault injection (`ember fault`: partition, delay, drop): testing only",
    )
    add_admin_arguments(start)
    add_contracts_arguments(start)
    add_registry_arguments(start)
    start.set_defaults(run=cmd_node_start)


def add_admin_arguments(parser: Any) -> None:
    """The admin API flags (``docs/operability.md``)."""
    parser.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="serve the admin API, metrics and dashboard here (port 0: any free port)",
    )
    parser.add_argument(
        "--admin-token-file",
        type=Path,
        help="file with the admin bearer token (default: derived from the cookie)",
    )
    parser.add_argument(
        "--admin-allow-mutations",
        action="store_true",
        help="serve the mutating admin routes (leave, leadership transfer, fault injection)",
    )


def admin_config(args: argparse.Namespace) -> AdminConfig | None:
    """The :class:`AdminConfig` the admin flags ask for (None without ``--admin``)."""
    if args.admin is None:
        return None
    return AdminConfig(
        listen=args.admin,
        token_file=args.admin_token_file,
        allow_mutations=args.admin_allow_mutations,
    )


def add_mesh_arguments(parser: Any) -> None:
    """The membership flags ``ember node start`` takes (``ember cluster up`` passes them on)."""
    parser.add_argument(
        "--discovery",
        default="mdns",
        choices=["mdns", "seeds", "dns", "none"],
        help="how peers are found: mDNS on the LAN (default), static --join seeds only, DNS "
        "records (--dns), or none (no membership; only --connect)",
    )
    parser.add_argument(
        "--join",
        action="append",
        default=[],
        metavar="[NAME@]HOST:PORT",
        help="a seed member to join through (repeatable, or comma-separated)",
    )
    parser.add_argument("--dns", metavar="NAME", help="DNS name with A or SRV records of seeds")
    parser.add_argument(
        "--mesh-profile",
        default="lan",
        choices=["local", "lan", "wan"],
        help="membership timing profile (docs/mesh.md)",
    )
    parser.add_argument("--advertise", metavar="HOST:PORT", help="address others reach us at")
    parser.add_argument(
        "--no-mdns-probe",
        dest="mdns_probe",
        action="store_false",
        help="skip mDNS name probing (saves about 1 s at start; no duplicate-name check)",
    )
    parser.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="node metadata gossiped to the cluster (repeatable)",
    )


def mesh_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Node`` keyword arguments for the membership flags."""
    if args.discovery == "none":
        return {}
    meta: dict[str, str] = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"ember: --meta takes KEY=VALUE, not {item!r}")
        meta[key] = value
    return {
        "discovery": args.discovery,
        "join": split_connect(args.join),
        "dns": args.dns,
        "mesh": args.mesh_profile,
        "meta": meta or None,
        "advertise": args.advertise,
        "mdns_probe": args.mdns_probe,
    }


def split_connect(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def cmd_node_start(args: argparse.Namespace) -> int:
    setup_logging(args.name, args.log_level)
    cookie = read_cookie(args.cookie_file)
    try:
        hook = load_app(args)
        stall = args.stall_threshold if args.stall_threshold > 0 else None
        return run(lambda: serve(args, cookie, hook), stall_threshold=stall)
    except (EmberError, OSError) as exc:  # one line, no traceback: a port in use, a taken name
        log.error("node %s failed: %s", args.name, exc)
        return 1


async def serve(args: argparse.Namespace, cookie: str, hook: AppHook | None = None) -> int:
    ssl_server = ssl_client = None
    if args.tls_dir is not None:
        from ..transport._tls import client_context, server_context

        ssl_server = server_context(args.tls_dir, args.name)
        ssl_client = client_context(args.tls_dir, args.name)
    node = Node(
        args.name,
        listen=args.listen,
        cookie=cookie,
        cluster=args.cluster,
        ssl_server=ssl_server,
        ssl_client=ssl_client,
        data_dir=args.data_dir if args.data_dir is not None else Path(".ember") / args.name,
        spawn_allow=tuple(args.spawn_allow) if args.spawn_allow else None,
        config=TransportConfig(fault_injection=True) if args.chaos else None,
        admin=admin_config(args),
        contracts=contracts_config(args),
        registry=registry_config(args),
        **mesh_options(args),
    )
    if args.chaos:
        log.warning("node %s accepts fault injection (--chaos): for testing only", args.name)
    loaded = load_contracts(args.contracts_load)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    if node.contracts is not None:
        node.contracts.register(*loaded)
    if node.admin is not None:
        node.admin.on_leave = stop.set  # POST /api/v1/leave: leave gracefully, as on SIGTERM
    if node.mesh is not None:
        # Member events as JSON lines on stdout, for scripts and LocalCluster to follow.
        node.on_member_event(
            lambda event: print(json.dumps(event.as_dict(), default=repr), flush=True)
        )
    try:
        if hook is not None:
            try:
                await start_app(hook, node)
            except Exception as exc:
                log.error("node %s: --app %s failed", node.name, args.app, exc_info=exc)
                return 1
        for peer in split_connect(args.connect):
            try:
                async with asyncio.timeout(args.connect_timeout):
                    await node.connect_node(peer)
            except TimeoutError:
                log.error("could not connect to %s within %s s", peer, args.connect_timeout)
                return 1
        log.info("node %s listening on %s (creation %d)", node.name, node.address, node.creation)
        ready = {
            "event": "ready",
            "node": node.name,
            "address": node.address,
            "creation": node.creation,
            "connected": node.connected_nodes(),
            "incarnation": node.mesh.incarnation if node.mesh is not None else None,
            "members": [m.as_dict() for m in node.members() if m.name != node.name],
            "admin": "{}:{}".format(*node.admin.address)
            if node.admin and node.admin.address
            else None,
        }
        print(json.dumps(ready, default=repr), flush=True)
        await stop.wait()
        log.info("node %s shutting down", node.name)
    finally:
        await node.stop()
    log.info("node %s stopped", node.name)
    sys.stdout.flush()
    return 0
