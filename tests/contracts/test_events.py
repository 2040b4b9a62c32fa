"""Awaited events on one node (local runs, virtual time): correlation, early events kept,
duplicates rejected or ignored, events for no run, await timeouts, and a waiting run that
holds no actor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ember
from ember.contracts import (
    AwaitTimeout,
    Contract,
    DuplicateEvent,
    EventTimedOut,
    Input,
    NoMatchingRun,
    await_event,
    compute,
    deliver_event,
)
from ember.contracts._coordinator import RunCoordinator


class Signup(Contract):
    user = Input(str)
    correlate_by = ("user",)

    @compute
    async def prepared(user: str) -> str:
        await asyncio.sleep(5)
        return user.upper()

    confirmed = await_event("email_confirmed", after=("prepared",))
    paid = await_event("paid", timeout=60, on_timeout="continue")

    @compute
    def welcome(prepared: str, confirmed: Any, paid: Any) -> list[Any]:
        return [prepared, confirmed, "unpaid" if isinstance(paid, EventTimedOut) else paid]

    outputs = ("welcome",)


def coordinators(node: ember.Node) -> int:
    """Coordinator processes on ``node`` (checked against the service's own count)."""
    infos = [node.process_info(p) for p in node.processes()]
    name = f"{RunCoordinator.__module__}.{RunCoordinator.__qualname__}"
    procs = [i for i in infos if i is not None and i.behaviour == name]
    assert len(procs) == node.contracts.statistics().coordinators
    return len(procs)


async def test_an_early_event_is_kept_until_its_await_is_reached(node: ember.Node) -> None:
    handle = await Signup.start({"user": "ann"}, run_id="s1")
    # "prepared" runs for 5 s: the confirmation arrives before the await is reached
    assert await deliver_event("email_confirmed", {"user": "ann"}, {"ok": 1}) == ["s1"]
    assert await deliver_event("paid", {"user": "ann"}, 9.99) == ["s1"]
    assert await handle.result() == {"welcome": ["ANN", {"ok": 1}, 9.99]}
    status = await handle.status()
    assert [(e.event, e.verdict) for e in status.events] == [
        ("email_confirmed", "delivered"),
        ("paid", "delivered"),
    ]


async def test_a_waiting_run_holds_no_actor(node: ember.Node) -> None:
    handle = await Signup.start({"user": "bob"}, run_id="s2")
    assert coordinators(node) == 1
    await asyncio.sleep(6)  # prepared is done; both awaits wait
    status = await handle.status()
    assert status.status == "waiting"
    assert set(status.waiting_on) == {"email_confirmed", "paid"}
    assert status.reason.startswith("waiting for event")
    assert coordinators(node) == 0
    await deliver_event("email_confirmed", {"user": "bob"}, "yes")
    await deliver_event("paid", {"user": "bob"}, 5)
    assert await handle.result() == {"welcome": ["BOB", "yes", 5]}
    assert node.contracts.statistics().runs_parked >= 1


async def test_duplicates_are_rejected_or_ignored_and_a_retry_is_not_one(
    node: ember.Node,
) -> None:
    await Signup.start({"user": "cy"}, run_id="s3")
    assert await deliver_event("paid", {"user": "cy"}, 1, event_id="pay-1") == ["s3"]
    assert await deliver_event("paid", {"user": "cy"}, 1, event_id="pay-1") == ["s3"]  # again
    with pytest.raises(DuplicateEvent) as err:
        await deliver_event("paid", {"user": "cy"}, 2, event_id="pay-2")
    assert (err.value.run_id, err.value.event, err.value.kept_id) == ("s3", "paid", "pay-1")
    assert await deliver_event("paid", {"user": "cy"}, 2, duplicates="ignore") == []
    status = await node.contracts.status("s3")
    assert [e.verdict for e in status.events] == ["delivered", "again", "duplicate", "duplicate"]
    stats = node.contracts.statistics()
    assert (stats.events_delivered, stats.events_again, stats.events_duplicate) == (1, 1, 2)


async def test_an_event_for_no_run_is_an_error(node: ember.Node) -> None:
    with pytest.raises(NoMatchingRun, match="no unfinished run has this correlation"):
        await deliver_event("paid", {"user": "nobody"}, 1)
    await Signup.start({"user": "dee"}, run_id="s4")
    with pytest.raises(NoMatchingRun, match="does not await this event"):
        await deliver_event("shipped", {"user": "dee"}, 1)
    assert await deliver_event("paid", run_id="s4", payload=3) == ["s4"]
    assert node.contracts.statistics().events_unmatched == 2


class Deadline(Contract):
    order = Input(str)
    correlate_by = ("order",)
    shipped = await_event("shipped", timeout=30)
    outputs = ("shipped",)


async def test_await_timeouts_fail_or_continue(node: ember.Node) -> None:
    t0 = asyncio.get_running_loop().time()
    handle = await Deadline.start({"order": "o1"}, run_id="d1")
    with pytest.raises(AwaitTimeout) as err:
        await handle.result()
    assert (err.value.step, err.value.event, err.value.timeout) == ("shipped", "shipped", 30)
    assert asyncio.get_running_loop().time() - t0 == pytest.approx(30, abs=0.1)
    with pytest.raises(NoMatchingRun, match="no unfinished run has this correlation"):
        await deliver_event("shipped", {"order": "o1"}, 1)
    with pytest.raises(NoMatchingRun, match="the run has finished"):
        await deliver_event("shipped", run_id="d1", payload=1)

    # "paid" continues with EventTimedOut after 60 s
    handle = await Signup.start({"user": "eve"}, run_id="s5")
    await asyncio.sleep(61)
    await deliver_event("email_confirmed", {"user": "eve"}, "ok")
    assert await handle.result() == {"welcome": ["EVE", "ok", "unpaid"]}
