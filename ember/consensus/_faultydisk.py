"""A slow or failing disk under the Raft store, for chaos runs: a save gate that waits and
fails as it is told. A node process started for chaos gives every Raft member one that asks
the node's fault hook (``Faults.disk``); the sim driver gives members one of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ._types import StorageError

__all__ = ["INJECTED_DISK_FAILURE", "faulty_disk"]

INJECTED_DISK_FAILURE = "injected disk failure (chaos failing-disk)"
"""The message of the :class:`StorageError` an injected disk failure raises."""


def faulty_disk(draw: Callable[[], tuple[float, bool]]) -> Callable[[], Awaitable[None]]:
    """A save gate: before each save, wait the seconds ``draw()`` gives, then fail with
    :class:`StorageError` if it says so (the member stops, as on an I/O error)."""

    async def gate() -> None:
        latency, fails = draw()
        if latency:
            await asyncio.sleep(latency)
        if fails:
            raise StorageError(INJECTED_DISK_FAILURE)

    return gate
