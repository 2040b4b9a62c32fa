"""Helpers for the admin API tests: a node with the API on a free port and a client for it."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

import ember
from ember.observability import AdminConfig

TOKEN = "test-admin-token"


class Client:
    """Requests to one node's admin API, with (or without) the token."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def get(
        self, path: str, *, token: str | None = TOKEN, **kw: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.get(self.base + path, headers=headers, **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body, r

    async def post(
        self, path: str, body: Any = None, *, token: str | None = TOKEN, **kw: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.post(self.base + path, json=body, headers=headers, **kw) as r:
            return r.status, await r.json()


@contextlib.asynccontextmanager
async def admin_node(
    name: str = "a", *, mesh: str | None = "local", **admin: Any
) -> AsyncIterator[tuple[ember.Node, Client]]:
    """A node (meshed unless ``mesh=None``) serving its admin API on a free loopback port, and
    a client for it."""
    config = AdminConfig(listen="127.0.0.1:0", token=TOKEN, **admin)
    async with (
        ember.Node(name, listen="127.0.0.1:0", cookie="c", mesh=mesh, admin=config) as node,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session,
    ):
        assert node.admin is not None and node.admin.address is not None
        host, port = node.admin.address
        yield node, Client(session, f"http://{host}:{port}")


def promtool_check(text: str) -> str:
    """``promtool check metrics`` output for ``text`` (empty: no problem found)."""
    promtool = shutil.which("promtool")
    assert promtool is not None
    done = subprocess.run(
        [promtool, "check", "metrics"],
        check=False,
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else " (failed)")
