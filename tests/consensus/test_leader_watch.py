"""``LeaderWatch`` on its own, in virtual time: a slow answer from the real leader is waited for,
a request to a deposed member is given up as soon as another member confirms it leads, one poll
serves every request waiting on a member, and a caller's own timeout stays a timeout."""

from __future__ import annotations

import asyncio

import pytest

from ember.consensus._watch import POLL_EVERY, SUSPECT_AFTER, Deposed, LeaderWatch

MEMBERS = ["a", "b", "c"]


class Group:
    """Members that confirm their leadership when ``leader`` names them, after ``delay``."""

    def __init__(self, leader: str | None, delay: float = 0.01) -> None:
        self.leader = leader
        self.delay = delay
        self.asked: list[str] = []

    async def confirm(self, member: str, within: float) -> None:
        self.asked.append(member)
        await asyncio.sleep(self.delay)
        if member != self.leader:
            raise LookupError(f"{member} does not lead")


async def answer(after: float, value: str = "done") -> str:
    await asyncio.sleep(after)
    return value


async def test_a_prompt_answer_asks_nobody() -> None:
    group = Group(leader="b")
    watch = LeaderWatch(lambda: MEMBERS, group.confirm)
    assert await watch.guard("a", answer(SUSPECT_AFTER / 2)) == "done"
    assert group.asked == []


async def test_a_slow_answer_from_the_leader_is_waited_for() -> None:
    group = Group(leader="a")  # the member waited on leads: the others say they do not
    watch = LeaderWatch(lambda: MEMBERS, group.confirm)
    assert await watch.guard("a", answer(2.0)) == "done"
    assert set(group.asked) == {"b", "c"}  # asked, round after round, never the target
    assert len(group.asked) >= 2 * int((2.0 - SUSPECT_AFTER) / (POLL_EVERY + 0.01)) - 2


async def test_a_request_to_a_deposed_member_is_given_up_when_another_leads() -> None:
    group = Group(leader=None)
    watch = LeaderWatch(lambda: MEMBERS, group.confirm)
    loop = asyncio.get_running_loop()
    request = asyncio.ensure_future(answer(60.0))
    guarded = asyncio.ensure_future(watch.guard("a", request))
    await asyncio.sleep(1.0)  # the election is under way: nobody leads yet
    assert not guarded.done()
    group.leader = "c"
    t0 = loop.time()
    with pytest.raises(Deposed) as err:
        await guarded
    assert err.value.leader == "c"
    assert loop.time() - t0 <= POLL_EVERY + 2 * group.delay + 1e-6
    assert request.cancelled()  # its late answer is dropped


async def test_one_poll_serves_every_request_waiting_on_a_member() -> None:
    group = Group(leader=None)
    watch = LeaderWatch(lambda: MEMBERS, group.confirm)
    waiting = [asyncio.ensure_future(watch.guard("a", answer(60.0))) for _ in range(50)]
    await asyncio.sleep(SUSPECT_AFTER + 3 * (POLL_EVERY + group.delay))
    rounds = len(group.asked) / 2
    assert 2 <= rounds <= 4  # not 50 times that
    group.leader = "b"
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, Deposed) and r.leader == "b" for r in results)
    await asyncio.sleep(1.0)
    asked = len(group.asked)
    await asyncio.sleep(1.0)
    assert len(group.asked) == asked  # nobody waits: the poll stopped


async def test_the_callers_timeout_stays_a_timeout() -> None:
    group = Group(leader=None)
    watch = LeaderWatch(lambda: MEMBERS, group.confirm)
    request = asyncio.ensure_future(answer(60.0))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await watch.guard("a", request)
    assert request.cancelled()
    await asyncio.sleep(1.0)
    asked = len(group.asked)
    await asyncio.sleep(1.0)
    assert len(group.asked) == asked  # the poll ended with its last waiter


async def test_an_error_of_the_request_is_the_callers() -> None:
    watch = LeaderWatch(lambda: MEMBERS, Group(leader=None).confirm)

    async def fails() -> str:
        await asyncio.sleep(1.0)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await watch.guard("a", fails())
