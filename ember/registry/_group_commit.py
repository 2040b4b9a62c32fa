"""Group commit of the consistent tier: the registrations and unregistrations a node makes while
its previous write to ``ember.names`` is in flight wait in a bounded queue and go together, as
one ``batch`` entry (etcd's and every CP store's way to more writes per second than round
trips). Each request keeps its own outcome: the state machine decides the items one by one in
log order and answers each (:mod:`._names_sm`)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import EmberError
from .._tasks import OwnedTasks
from ..consensus._cluster_errors import OutcomeUnknown
from ._errors import TierUnavailable

__all__ = ["GroupCommit"]

Write = Callable[[dict[str, Any], float], Awaitable[Any]]


class _Request:
    __slots__ = ("deadline", "future", "item", "sent", "size")

    def __init__(self, item: list[Any], size: int, deadline: float, future: asyncio.Future[Any]):
        self.item = item
        self.size = size
        self.deadline = deadline
        self.future = future
        self.sent = False


class GroupCommit:
    """Queues items for ``write`` (``await write(command, within)``, the tier's Raft write),
    at most ``queue_limit`` waiting; at most ``in_flight`` batches are proposed at once, each of
    at most ``batch_limit`` items and about ``batch_bytes`` bytes (an item larger than that
    goes alone). ``stats`` (the tier's counters) gets ``batch_writes``, ``batched``,
    ``largest_batch`` and ``queue_full``."""

    def __init__(
        self,
        write: Write,
        tasks: OwnedTasks,
        stats: Any,
        *,
        batch_limit: int,
        batch_bytes: int,
        queue_limit: int,
        in_flight: int,
    ) -> None:
        self._write = write
        self._tasks = tasks
        self._stats = stats
        self._batch_limit = batch_limit
        self._batch_bytes = batch_bytes
        self._queue_limit = queue_limit
        self._in_flight = in_flight
        self._queue: deque[_Request] = deque()
        self._flying = 0

    def __len__(self) -> int:
        return len(self._queue)

    async def submit(self, item: list[Any], size: int, within: float) -> Any:
        """The state machine's answer to ``item`` (``size``: its msgpack bytes), within
        ``within`` seconds. :class:`TierUnavailable` if the queue is full or the item was not
        proposed in time (nothing written), :class:`OutcomeUnknown` if it was proposed and
        not answered in time; the batch write's own errors as they are."""
        if len(self._queue) >= self._queue_limit:
            # Requests that expired while they waited are still queued: forget those first.
            self._queue = deque(r for r in self._queue if not r.future.done())
        if len(self._queue) >= self._queue_limit:
            self._stats.queue_full += 1
            raise TierUnavailable(
                "consistent",
                f"{len(self._queue)} registrations queued on this node already "
                "(RegistryConfig.batch_queue)",
            )
        loop = asyncio.get_running_loop()
        request = _Request(item, size, loop.time() + within, loop.create_future())
        self._queue.append(request)
        if self._flying < self._in_flight:
            # The flight starts on the next loop turn: what is submitted in this one joins.
            self._flying += 1
            self._tasks.spawn(self._fly())
        # A timer per request, not asyncio.timeout (a few microseconds less on a path every
        # registration takes); it fails the request, saying whether it was proposed.
        timer = loop.call_at(request.deadline, self._expire, request, within)
        try:
            return await request.future
        finally:
            timer.cancel()

    @staticmethod
    def _expire(request: _Request, within: float) -> None:
        if request.future.done():
            return
        if request.sent:
            error: EmberError = OutcomeUnknown(None, f"no answer within {within} s")
        else:
            error = TierUnavailable(
                "consistent", f"not proposed within {within} s (writes ahead of it)"
            )
        request.future.set_exception(error)

    def fail_all(self, error: EmberError) -> None:
        """Fail every queued request with ``error`` (the tier stops)."""
        while self._queue:
            future = self._queue.popleft().future
            if not future.done():
                future.set_exception(error)

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        queue = self._queue
        while queue and len(batch) < self._batch_limit:
            request = queue[0]
            if request.future.done():  # its caller gave up while it waited
                queue.popleft()
                continue
            if batch and size + request.size > self._batch_bytes:
                break
            queue.popleft()
            request.sent = True
            batch.append(request)
            size += request.size
        return batch

    async def _fly(self) -> None:
        try:
            while True:
                batch = self._take()
                if not batch:
                    return
                await self._propose(batch)
                # Let the callers just answered run first: each that asks again at once
                # (a registrant's next name) joins the next batch instead of the one after.
                await asyncio.sleep(0)
        finally:
            self._flying -= 1

    async def _propose(self, batch: list[_Request]) -> None:
        stats = self._stats
        stats.batch_writes += 1
        stats.batched += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        within = max(r.deadline for r in batch) - asyncio.get_running_loop().time()
        command = {"op": "batch", "items": [r.item for r in batch]}
        try:
            results = await self._write(command, max(within, 0.0))
            if results.__class__ is not list or len(results) != len(batch):
                raise OutcomeUnknown(None, f"the batch was answered with {results!r}")
        except Exception as exc:  # every item of the entry shares its fate
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        except BaseException:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(TierUnavailable("consistent", "stopping"))
            raise
        for request, result in zip(batch, results, strict=True):  # checked above
            if not request.future.done():
                request.future.set_result(result)
