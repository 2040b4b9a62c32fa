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
        self._abandoned: dict[asyncio.Future[Any], str] = {}  # request -> who leads instead

    async def guard(self, target: str, request: Awaitable[_T]) -> _T:
        """``await request`` (a request to ``target``), or raise :class:`Deposed` once another
        member confirms it leads while the request is still unanswered; the request is then
        cancelled (a late answer is dropped). Costs a timer while answers are prompt."""
        task = asyncio.ensure_future(request)
        timer = asyncio.get_running_loop().call_later(SUSPECT_AFTER, self._suspect, target, task)
        try:
            return await task
        except asyncio.CancelledError:
            leader = self._abandoned.pop(task, None)
            me = asyncio.current_task()
            if leader is None or (me is not None and me.cancelling()):
                raise  # cancelled from outside (a timeout): that is what the caller sees
            raise Deposed(leader) from None
        finally:
            timer.cancel()
            self._abandoned.pop(task, None)

    def _suspect(self, target: str, task: asyncio.Future[Any]) -> None:
        """``task`` went unanswered for :data:`SUSPECT_AFTER`: wait on the poll of its
        target, which abandons it if another member leads."""
        if task.done():
            return
        poll = self._join(target)

        def deposed(found: asyncio.Future[str]) -> None:
            if not task.done() and not found.cancelled():
                self._abandoned[task] = found.result()
                task.cancel()

        poll.found.add_done_callback(deposed)
        task.add_done_callback(lambda _t: self._leave(target, poll))

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
