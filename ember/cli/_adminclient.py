"""A small client for nodes' admin APIs, shared by ``ember status`` and ``ember top``."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp

from .._errors import EmberError
from ..observability import derive_token
from ._client import read_cookie


class AdminUnreachable(EmberError):
    """A node's admin API could not be reached or refused the request."""


def add_admin_client_arguments(parser: Any) -> None:
    """``--node`` (repeatable) and the ways to get the token."""
    parser.add_argument(
        "--node",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="a node's admin address (repeatable, or comma-separated)",
    )
    parser.add_argument("--token-file", type=Path, help="file with the admin token")
    parser.add_argument(
        "--cookie-file", type=Path, help="file with the cluster cookie (the token is derived)"
    )
    parser.add_argument("--cluster", default="ember", help="cluster name (with --cookie-file)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")


def token_of(args: argparse.Namespace) -> str:
    """The admin token from ``--token-file``, ``--cookie-file`` or ``$EMBER_ADMIN_TOKEN``."""
    if args.token_file is not None:
        try:
            token: str = args.token_file.read_text().strip()
        except OSError as exc:
            raise SystemExit(f"ember: cannot read token file {args.token_file}: {exc}") from exc
        if not token:
            raise SystemExit(f"ember: token file {args.token_file} is empty")
        return token
    if args.cookie_file is not None:
        return derive_token(read_cookie(args.cookie_file), args.cluster)
    env = os.environ.get("EMBER_ADMIN_TOKEN")
    if env:
        return env
    raise SystemExit("ember: give --token-file, --cookie-file or $EMBER_ADMIN_TOKEN")


def nodes_of(args: argparse.Namespace) -> list[str]:
    return [n.strip() for item in args.node for n in item.split(",") if n.strip()]


class AdminClient:
    """GETs JSON from many nodes' admin APIs at once."""

    def __init__(self, token: str, timeout: float) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, node: str, path: str) -> Any:
        """The JSON at ``path`` on ``node``; :class:`AdminUnreachable` if it cannot be had."""
        assert self._session is not None
        url = f"http://{node}{path}"
        try:
            async with self._session.get(url) as r:
                body = await r.json(content_type=None)
                if r.status != 200:
                    msg = body.get("error") if isinstance(body, dict) else body
                    raise AdminUnreachable(f"{node}: {r.status} {msg}")
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AdminUnreachable(f"{node}: {type(exc).__name__}: {exc}".rstrip(": ")) from None

    async def get_all(self, nodes: list[str], path: str) -> dict[str, Any]:
        """``path`` from every node: the JSON, or the :class:`AdminUnreachable` it raised."""
        results = await asyncio.gather(*(self.get(n, path) for n in nodes), return_exceptions=True)
        out: dict[str, Any] = {}
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, AdminUnreachable):
                raise result
            out[node] = result
        return out
