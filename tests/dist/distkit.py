"""Helpers for the distribution tests: two nodes in one event loop over loopback TCP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import ember
from ember.transport._config import TransportConfig

COOKIE = "test-cookie"


class Idle(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


@contextlib.asynccontextmanager
async def two_nodes(**a_kwargs: Any) -> AsyncIterator[tuple[ember.Node, ember.Node]]:
    """Nodes ``a`` (with ``a_kwargs``) and ``b``, started, ``b`` connected to ``a``, stopped
    at the end; fast heartbeats, so a lost connection is seen within half a second."""
    config = TransportConfig(heartbeat_interval=0.05, heartbeat_timeout=0.5)
    a = ember.Node("a", listen="127.0.0.1:0", cookie=COOKIE, config=config, **a_kwargs)
    await a.start()
    try:
        b = ember.Node(
            "b", listen="127.0.0.1:0", cookie=COOKIE, config=config, connect=[f"a@{a.address}"]
        )
        await b.start()
        try:
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()


async def settled(a: ember.Node, b: ember.Node) -> None:
    """Return once every signal node ``a`` sent before now has been applied on node ``b``,
    and every signal ``b`` sent before now has been applied on ``a``: a call from b to a
    travels behind the latter, its reply behind the former, on the one connection."""
    echo = await a.spawn(Idle)
    assert await b.call(echo, "sync") == "sync"
    a.exit(echo, "kill")
