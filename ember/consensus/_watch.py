"""Noticing that the member a client waits on no longer leads (issue 9): a frozen (SIGSTOP) or
cut-off leader answers nobody, and its connection is declared dead only after the transport's
heartbeat timeout (3 s), while the others elect a new leader within about an election timeout.

While a request to a member has gone unanswered for :data:`SUSPECT_AFTER`, one poller per
member (shared by every request waiting on it) asks the group's other members, every
:data:`POLL_EVERY`, to confirm their own leadership with a quorum (a ReadIndex round). One that
does leads the newest term, so the member waited on is deposed (or never led): the waiting
requests give up on it at once and their callers retry on the new leader (safe for writes,
which carry a session, and for reads) or report the outcome unknown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["POLL_EVERY", "SUSPECT_AFTER", "Deposed", "LeaderWatch"]

SUSPECT_AFTER = 0.2
"""Seconds a request may go unanswered before the watch asks the other members: well above a
request's usual latency (milliseconds), well under an election timeout (0.5-1 s)."""
POLL_EVERY = 0.1
"""Seconds between two rounds of asking (each is one request per other member)."""
CONFIRM_WITHIN = 0.5
"""Seconds a member gets to confirm its leadership."""

_T = TypeVar("_T")


class Deposed(Exception):
    """The member waited on does not lead: ``leader`` confirmed it does."""

    def __init__(self, leader: str) -> None:
        super().__init__(f"{leader} leads now")
        self.leader = leader


class _Poll:
    __slots__ = ("found", "task", "waiters")

    def __init__(self) -> None:
        self.waiters = 0
        self.found: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None


class _Guard:
    """One guarded request: the task awaiting it, and what the watch learned."""

    __slots__ = ("cancelling", "deposed", "done", "poll", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.deposed: str | None = None
        self.done = False
        self.poll: _Poll | None = None

    def found(self, leader: asyncio.Future[str]) -> None:
        if not self.done and not leader.cancelled():
            self.deposed = leader.result()
            self.task.cancel()


class LeaderWatch:
    """Guards requests to members of one group. ``members()`` lists them; ``confirm(member,
    within)`` returns once ``member`` confirmed, with a quorum, that it leads, and raises
    otherwise (it is not the leader, or cannot be reached)."""

    def __init__(
        self,
        members: Callable[[], list[str]],
        confirm: Callable[[str, float], Awaitable[object]],
    ) -> None:
        self._members = members
        self._confirm = confirm
        self._polls: dict[str, _Poll] = {}

    async def guard(self, target: str, request: Awaitable[_T]) -> _T:
        """``await request`` (a request to ``target``), or raise :class:`Deposed` once another
        member confirms it leads while the request is still unanswered; the request is then
        cancelled (a late answer is dropped). Like ``asyncio.timeout`` it cancels the calling
        task and takes the cancellation back, so a prompt answer costs one timer."""
        task = asyncio.current_task()
        assert task is not None, "guard() runs in a task"
        guard = _Guard(task)
        timer = asyncio.get_running_loop().call_later(SUSPECT_AFTER, self._suspect, target, guard)
        try:
            return await request
        except asyncio.CancelledError:
            if guard.deposed is not None and task.uncancel() <= guard.cancelling:
                raise Deposed(guard.deposed) from None
            raise  # cancelled from outside (a timeout): that is what the caller sees
        finally:
            guard.done = True
            timer.cancel()
            if guard.poll is not None:
                guard.poll.found.remove_done_callback(guard.found)
                self._leave(target, guard.poll)

    def _suspect(self, target: str, guard: _Guard) -> None:
        """The request went unanswered for :data:`SUSPECT_AFTER`: wait on the poll of its
        target, which cancels the request if another member leads."""
        if not guard.done:
            guard.poll = self._join(target)
            guard.poll.found.add_done_callback(guard.found)

    def _join(self, target: str) -> _Poll:
        poll = self._polls.get(target)
        if poll is None or poll.found.done():
            poll = self._polls[target] = _Poll()
            poll.task = asyncio.ensure_future(self._run(target, poll))
        poll.waiters += 1
        return poll

    def _leave(self, target: str, poll: _Poll) -> None:
        poll.waiters -= 1
        if poll.waiters == 0:
            if poll.task is not None:
                poll.task.cancel()
            if self._polls.get(target) is poll:
                del self._polls[target]

    async def _run(self, target: str, poll: _Poll) -> None:
        """Ask the other members, a round every :data:`POLL_EVERY`, until one leads."""
        while True:
            others = [m for m in self._members() if m != target]
            asks = [asyncio.ensure_future(self._leads(m)) for m in others]
            try:
                for ask in asyncio.as_completed(asks):
                    try:
                        member = await ask
                    except Exception:  # not the leader, or not reachable now: ask on
                        continue
                    poll.found.set_result(member)
                    if self._polls.get(target) is poll:
                        del self._polls[target]
                    return
            finally:
                for ask in asks:
                    ask.cancel()
                await asyncio.gather(*asks, return_exceptions=True)
            await asyncio.sleep(POLL_EVERY)

    async def _leads(self, member: str) -> str:
        await self._confirm(member, CONFIRM_WITHIN)
        return member
