"""Helpers for the Cluster tests: waiting on a group's state, which no event announces."""

from __future__ import annotations

import asyncio
from typing import Any

from ember.consensus import Cluster


async def wait_applied(cluster: Cluster, member: str, index: int) -> None:
    """Until ``member`` has applied ``index`` (checked every 50 ms of virtual time)."""
    while (await cluster.status(member))["applied"] < index:  # noqa: ASYNC110 - virtual time
        await asyncio.sleep(0.05)


async def eventually(check: Any, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Until ``await check()`` is true, within ``timeout`` (checked every 50 ms)."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - virtual time
            await asyncio.sleep(0.05)
