"""``ember certs init``: a cluster CA and node certificates for mutual TLS."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._errors import EmberError


def add_certs_commands(sub: Any) -> None:
    certs = sub.add_parser("certs", help="TLS certificates").add_subparsers(
        dest="certs_cmd", required=True
    )
    init = certs.add_parser("init", help="create a cluster CA and certificates for nodes")
    init.add_argument("--dir", type=Path, required=True, help="where to write the PEM files")
    init.add_argument("--cluster", default="ember", help="cluster name (in the CA's name)")
    init.add_argument("--nodes", required=True, help="comma-separated node names")
    init.add_argument(
        "--host",
        action="append",
        default=None,
        help="address or DNS name the nodes' certificates are valid for (repeatable; "
        "default 127.0.0.1 and localhost)",
    )
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.set_defaults(run=cmd_certs_init)


def cmd_certs_init(args: argparse.Namespace) -> int:
    from ..transport._certs import init_cluster_ca, issue_node_cert

    hosts = tuple(args.host) if args.host else ("127.0.0.1", "localhost")
    names = [n.strip() for n in args.nodes.split(",") if n.strip()]
    try:
        if args.force or not (args.dir / "ca.pem").exists():
            init_cluster_ca(args.dir, args.cluster, force=args.force)
            print(f"cluster CA written to {args.dir / 'ca.pem'}")
        for name in names:
            issue_node_cert(args.dir, name, hosts=hosts, force=args.force)
            print(f"certificate for {name} written to {args.dir / (name + '.pem')}")
    except EmberError as exc:
        print(f"ember certs init: {exc}")
        return 1
    return 0
