"""``ember cluster up``: a local cluster of node processes until Ctrl-C
(:class:`ember.testing._localcluster.LocalCluster` starts and follows them)."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from ..actors import run
from ..testing._localcluster import LocalCluster


def add_cluster_commands(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="local clusters").add_subparsers(
        dest="cluster_cmd", required=True
    )
    up = cluster.add_parser("up", help="start N node processes on loopback until Ctrl-C")
    up.add_argument("-n", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument("--prefix", default="n", help="node name prefix (default n: n1, n2, ...)")
    up.add_argument(
        "--cluster",
        help="cluster name (default: ember-<random>, so two local clusters never merge)",
    )
    up.add_argument("--cookie-file", type=Path, help="use this cookie instead of a new one")
    up.add_argument("--workdir", type=Path, help="where cookie, data and logs go (default: temp)")
    up.add_argument(
        "--discovery",
        default="mdns",
        choices=["mdns", "seeds", "none"],
        help="mdns (default): nodes find each other by mDNS; seeds: join through the first "
        "node; none: no membership, a full mesh of connections",
    )
    up.add_argument(
        "--admin",
        action="store_true",
        help="each node serves its admin API and dashboard on a free loopback port",
    )
    up.set_defaults(run=cmd_cluster_up)


def cmd_cluster_up(args: argparse.Namespace) -> int:
    cookie = args.cookie_file.read_text().strip() if args.cookie_file else None
    cluster = LocalCluster(
        args.n,
        prefix=args.prefix,
        cookie=cookie,
        cluster=args.cluster or f"ember-{secrets.token_hex(3)}",
        workdir=args.workdir,
        discovery=args.discovery,
        extra_args=("--admin", "127.0.0.1:0") if args.admin else (),
    )
    return run(lambda: _up(cluster))


async def _up(cluster: LocalCluster) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nodes = await cluster.start()
    how = {
        "mdns": "found each other by mDNS",
        "seeds": "joined through the first node",
        "none": "connected in a full mesh",
    }[cluster.discovery]
    print(f"cluster {cluster.cluster!r}: {len(nodes)} nodes, {how}")
    for node in nodes:
        admin = f"   admin http://{node.admin}/" if node.admin else ""
        print(f"  {node.name:<8} {node.address:<22} pid {node.process.pid}{admin}")
    print(f"cookie file: {cluster.cookie_file}   logs: {cluster.workdir}/<node>.log")
    print("Ctrl-C stops them all.", flush=True)
    stopping = asyncio.ensure_future(stop.wait())
    while not stop.is_set() and cluster.running():
        died = asyncio.ensure_future(cluster.wait_any_exit())
        await asyncio.wait({stopping, died}, return_when=asyncio.FIRST_COMPLETED)
        if not died.done():
            died.cancel()
            break
        node = died.result()
        await cluster.wait(node.name)  # its log is complete once its stderr is drained
        print(
            f"node {node.name} (pid {node.process.pid}) exited with code "
            f"{node.process.returncode}; last log lines:",
            file=sys.stderr,
        )
        for line in cluster.log_tail(node.name):
            print(f"  {line}", file=sys.stderr)
        print(f"{len(cluster.running())} of {len(cluster.nodes)} nodes still running", flush=True)
    stopping.cancel()
    codes = await cluster.stop()
    print("stopped: " + ", ".join(f"{n} exit {c}" for n, c in codes.items()), flush=True)
    return 0 if all(c == 0 for c in codes.values()) else 1
