"""What the commands that talk to a running node share: its flags and a short-lived client node.

``ember members`` and ``ember fault`` connect to one node as a client node of their own (named
``ember-cli-PID`` unless ``--as`` says otherwise), over the same authenticated transport as any
node: the cookie, the cluster name and, with ``--tls-dir``, mutual TLS.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .._node import Node


def add_client_arguments(parser: Any) -> None:
    """``--node``, ``--cookie-file``, ``--cluster``, ``--tls-dir``, ``--as``, ``--timeout``."""
    parser.add_argument("--node", required=True, metavar="NAME@HOST:PORT", help="node to ask")
    parser.add_argument("--cookie-file", required=True, type=Path, help="file with the cookie")
    parser.add_argument("--cluster", default="ember", help="cluster name (default: ember)")
    parser.add_argument("--tls-dir", type=Path, help="directory made by `ember certs init`")
    parser.add_argument(
        "--as",
        dest="client_name",
        help="node name this client uses (with --tls-dir: a name with a certificate there; "
        "default ember-cli-PID)",
    )
    parser.add_argument("--timeout", type=float, default=5.0)


def client_node(args: argparse.Namespace, cookie: str) -> Node:
    """A node (not started) that connects to ``args.node`` when started."""
    me = args.client_name or f"ember-cli-{os.getpid()}"
    ssl_server = ssl_client = None
    if args.tls_dir is not None:
        from ..transport._tls import client_context, server_context

        ssl_server = server_context(args.tls_dir, me)
        ssl_client = client_context(args.tls_dir, me)
    return Node(
        me,
        cookie=cookie,
        cluster=args.cluster,
        connect=[args.node],
        ssl_server=ssl_server,
        ssl_client=ssl_client,
    )
