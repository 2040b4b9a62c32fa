"""Where a run's facts go: the node's local store, applied at once, or the replicated store,
written through Raft in batches."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import UsageError
from ._store import RunStore

if TYPE_CHECKING:
    from ._service import ContractsService

__all__ = ["Journal", "LocalJournal", "RaftJournal"]


class Journal(Protocol):
    """Where a run's facts go: the node's local store (``sync``: applied at once) or the
    replicated store (written through Raft)."""

    sync: bool

    def apply(self, command: dict[str, Any]) -> list[Any]: ...

    async def write(self, command: dict[str, Any], request_id: str) -> list[Any]: ...


class LocalJournal:
    """A run's facts in this node's in-memory store, applied at once."""

    sync = True

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def apply(self, command: dict[str, Any]) -> list[Any]:
        if command["op"] == "advance":  # the per-step path: straight to its handler
            return self.store.advance(command)
        result: list[Any] = self.store.apply_command(command)
        return result

    async def write(self, command: dict[str, Any], request_id: str) -> list[Any]:
        return self.apply(command)


class RaftJournal:
    """Runs' facts in the replicated store. The writes of all the node's coordinators are
    batched: one is in flight at a time, and what the others submit meanwhile goes together in
    the next one (a single Raft entry), so durable steps cost one entry per batch, not per step,
    when many runs progress at once (group commit, at the level of runs)."""

    sync = False
    MAX_BATCH = 512
    """Commands in one entry at most."""

    def __init__(self, service: ContractsService) -> None:
        self.service = service
        self._pending: list[tuple[dict[str, Any], asyncio.Future[list[Any]]]] = []
        self._writing = False
        self._batches = 0
        self.largest = 0
        """The most commands one entry carried (for statistics)."""

    def apply(self, command: dict[str, Any]) -> list[Any]:
        raise UsageError("the durable store is written asynchronously")

    async def write(self, command: dict[str, Any], request_id: str) -> list[Any]:
        """Write ``command`` with the next batch; its own answer."""
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((command, fut))
        if not self._writing:
            self._writing = True
            self.service.spawn(self._flush())
        return await fut

    async def _flush(self) -> None:
        service = self.service
        try:
            while self._pending:
                batch, self._pending = (
                    self._pending[: self.MAX_BATCH],
                    self._pending[self.MAX_BATCH :],
                )
                self._batches += 1
                self.largest = max(self.largest, len(batch))
                request_id = f"batch:{service.node.name}:{service.node.creation}:{self._batches}"
                try:
                    if len(batch) == 1:
                        answers = [
                            await service.store().write(batch[0][0], request_id, retry_forever=True)
                        ]
                    else:
                        command = {"op": "batch", "commands": [c for c, _ in batch]}
                        answers = await service.store().write(
                            command, request_id, retry_forever=True
                        )
                except BaseException as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    raise
                for (_, fut), answer in zip(batch, answers, strict=True):
                    if not fut.done():
                        fut.set_result(answer)
        finally:
            self._writing = False
