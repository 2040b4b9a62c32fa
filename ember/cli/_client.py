"""What the commands that talk to a running node share: its flags and a short-lived client node.

``ember members`` and ``ember fault`` connect to one node as a client node of their own (named
``ember-cli-PID`` unless ``--as`` says otherwise), over the same authenticated transport as any
node: the cookie, the cluster name and, with ``--tls-dir``, mutual TLS.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from .._errors import UsageError
from .._node import Node, parse_node_address
from ..transport._cookie import read_cookie_file


def read_cookie(path: Path) -> str:
    """The cookie in ``path``, by the rule ``Node(cookie=...)`` follows too (surrounding
    whitespace ignored; a warning if others can read the file); exits if there is none."""
    try:
        return read_cookie_file(path)
    except UsageError as exc:
        raise SystemExit(f"ember: {exc}") from exc


def add_client_arguments(parser: Any, timeout: float = 5.0) -> None:
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
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        metavar="SECONDS",
        help=f"how long to wait for the node's answer, connecting included (default {timeout:g})",
    )


def describe(exc: BaseException) -> str:
    """Why a command could not reach a node, in words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the node running, and listening at that address?)"
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


async def connect_once(node: Node, args: argparse.Namespace) -> str:
    """Start the client ``node`` and connect it to ``args.node`` in one attempt (a refused
    connection is said at once, not after the timeout); returns the asked node's name."""
    name, host, port = parse_node_address(args.node)
    await node.start()
    assert node.transport is not None
    # a refused handshake is raised here and said once by the command, not also logged
    transport_log = logging.getLogger("ember.transport")
    unsaid = _DropWarnings()
    transport_log.addFilter(unsaid)
    try:
        await node.transport.connect(name, host, port, retry=False)
    finally:
        transport_log.removeFilter(unsaid)
    return name


class _DropWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.WARNING


def client_node(args: argparse.Namespace, cookie: str, **options: Any) -> Node:
    """A short-lived node (not started) for talking to ``args.node``: it listens on a free
    loopback port only because a node that runs a transport listens somewhere; connect it with
    :func:`connect_once`. ``options`` go to :class:`~ember.Node`."""
    me = args.client_name or f"ember-cli-{os.getpid()}"
    ssl_server = ssl_client = None
    if args.tls_dir is not None:
        from ..transport._tls import client_context, server_context

        ssl_server = server_context(args.tls_dir, me)
        ssl_client = client_context(args.tls_dir, me)
    return Node(
        me,
        listen="127.0.0.1:0",
        cookie=cookie,
        cluster=args.cluster,
        ssl_server=ssl_server,
        ssl_client=ssl_client,
        **options,
    )
