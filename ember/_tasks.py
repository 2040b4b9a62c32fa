"""Background tasks owned by one object: kept until done, failures logged, cancelled and
awaited when the owner stops (no task is left running or failing unseen). The tasks run in the
context the owner was made in, not the caller's, so a node's background work stays the node's
whoever triggered it (what a simulated pause of one node relies on)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["OwnedTasks"]

T = TypeVar("T")


class OwnedTasks:
    """The tasks of one owner; ``what`` names them in the log line of a failure."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._tasks: set[asyncio.Task[Any]] = set()
        self._context = contextvars.copy_context()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as a task of this owner."""
        task = asyncio.get_running_loop().create_task(coro, context=self._context.copy())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("%s failed", self._what, exc_info=exc)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait for them to end."""
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
