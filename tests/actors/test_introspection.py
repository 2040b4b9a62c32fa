"""processes(), process_info(), statistics(), and several nodes sharing one event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from actorkit import Blocker, Boom, Idle, Puppet, flush, inside, puppet, raising

import ember
from ember import Exit


async def test_processes_lists_live_processes_in_spawn_order() -> None:
    async with ember.Node("a") as node:
        root = node.root
        assert node.processes() == [root]
        pids = [await node.spawn(Idle) for _ in range(3)]
        assert node.processes() == [root, *pids]
        exited = node.wait_exit(pids[1])
        node.exit(pids[1], "kill")
        await exited
        assert node.processes() == [root, pids[0], pids[2]]
        assert node.statistics().processes == 3


async def test_process_info_fields() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node, trap=True, name="p")
        other, _ = await puppet(node)
        await inside(node, pid, lambda _: ember.link(other))
        await inside(node, other, lambda _: ember.monitor(pid))
        ref = await inside(node, pid, lambda _: ember.monitor(other))
        info = node.process_info(pid)
        assert info is not None
        assert info.pid == pid
        assert info.status == "idle"
        assert info.behaviour == f"{Puppet.__module__}.Puppet"
        assert info.mailbox_len == 0
        assert info.links == (other,)
        assert info.monitored_by == 1
        assert info.monitoring == (other,)
        assert info.name == "p"
        assert info.trap_exits is True
        assert node.process_info(other).trap_exits is False  # type: ignore[union-attr]
        await inside(node, pid, lambda _: ember.demonitor(ref))
        assert node.process_info(pid).monitoring == ()  # type: ignore[union-attr]


async def test_process_info_status_and_mailbox_of_a_busy_process() -> None:
    async with ember.Node("a") as node:
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pid = await node.spawn(Blocker, entered)
        node.send(pid, "block")
        await entered
        for i in range(5):
            node.send(pid, i)
        info = node.process_info(pid)
        assert info is not None and info.status == "running" and info.mailbox_len == 5
        idle = await node.spawn(Idle)
        node.send(idle, "x")
        assert node.process_info(idle).status == "queued"  # type: ignore[union-attr]
        await node.call(idle, "y")
        assert node.process_info(idle).status == "idle"  # type: ignore[union-attr]
        node.exit(pid, "kill")


async def test_process_info_sees_itself_running() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        status = await inside(node, pid, lambda me: node.process_info(me.pid).status)  # type: ignore[union-attr]
        assert status == "running"


async def test_process_info_of_a_dead_or_unknown_pid_is_none() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Idle)
        exited = node.wait_exit(pid)
        node.exit(pid, "kill")
        await exited
        assert node.process_info(pid) is None
        assert node.process_info(ember.Pid("a", 10**6, 1)) is None
        assert node.process_info(ember.Pid("elsewhere", pid.serial, 1)) is None


async def test_statistics_counters(caplog: pytest.LogCaptureFixture) -> None:
    async with ember.Node("a") as node:
        base = node.statistics().counters
        pid, _ = await puppet(node)
        for i in range(10):
            node.send(pid, i)
        await flush(node, pid)  # 10 casts + 1 call handled
        crasher, _ = await puppet(node)
        exited = node.wait_exit(crasher)
        with caplog.at_level(logging.CRITICAL, "ember.actors"):
            node.send(crasher, raising(Boom()))
            await exited
        node.send(crasher, "to the dead")
        c = node.statistics().counters
        assert c["spawned"] - base["spawned"] == 2
        assert c["exited"] - base["exited"] == 1
        assert c["crashed"] - base["crashed"] == 1
        assert c["messages_processed"] - base["messages_processed"] == 10 + 1 + 1
        assert c["dropped_dead"] - base["dropped_dead"] == 1
        assert c["exited_error"] - base["exited_error"] == 1
        assert node.process_info(pid).messages == 11  # type: ignore[union-attr]
        assert set(c) == {
            "spawned",
            "exited",
            "exited_normal",
            "exited_shutdown",
            "exited_killed",
            "exited_noconnection",
            "exited_error",
            "exited_other",
            "restarts",
            "crashed",
            "messages_processed",
            "dropped_dead",
            "dropped_on_exit",
            "cast_refused",
            "mailbox_rejected",
            "mailbox_dropped",
            "mailbox_long",
        }
        assert node.statistics().processes == len(node.processes())


async def test_a_crash_is_logged_and_counted_once_not_by_every_link(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Processes that die of a link's exit signal did not crash themselves: only the process
    whose code raised is logged and counted -- whether or not the others have a terminate hook."""

    class WithTerminate(Puppet):
        def terminate(self, reason: Any) -> None:  # type: ignore[override]
            pass

    async with ember.Node("a") as node:
        crasher, _ = await puppet(node)
        plain, _ = await puppet(node)
        hooked = await node.spawn(WithTerminate, _Sink())
        await inside(node, crasher, lambda _: ember.link(plain))
        await inside(node, crasher, lambda _: ember.link(hooked))
        base = node.statistics().counters["crashed"]
        exits = [node.wait_exit(p) for p in (crasher, plain, hooked)]
        with caplog.at_level(logging.ERROR, "ember.actors"):
            node.send(crasher, raising(Boom("only once")))
            reasons = await asyncio.gather(*exits)
        assert all(isinstance(r, Boom) for r in reasons)
        assert node.statistics().counters["crashed"] == base + 1
        crash_logs = [r for r in caplog.records if r.name == "ember.actors"]
        assert len(crash_logs) == 1 and str(crasher) in crash_logs[0].getMessage()


class _Sink:
    def put(self, msg: Any) -> None:
        pass


# -- several nodes in one loop --------------------------------------------------------------------


async def test_two_nodes_in_one_loop_are_independent() -> None:
    async with ember.Node("a") as a, ember.Node("b") as b:
        pa = await a.spawn(Idle, name="svc")
        pb = await b.spawn(Idle, name="svc")
        assert pa != pb and (pa.node, pb.node) == ("a", "b")
        assert a.whereis("svc") == pa and b.whereis("svc") == pb
        assert pa in a.processes() and pa not in b.processes()
        assert pb in b.processes() and pb not in a.processes()
        assert b.process_info(pa) is None
        exited = a.wait_exit(pa)
        a.exit(pa, "custom")
        assert await exited == "custom"
        assert b.whereis("svc") == pb
        assert a.statistics().counters["exited"] == 1
        assert b.statistics().counters["exited"] == 0
    assert a.processes() == [] and b.processes() == []


async def test_stopping_one_node_leaves_the_other_running() -> None:
    async with ember.Node("b") as b:
        pb, inbox = await puppet(b)
        async with ember.Node("a") as a:
            await a.spawn(Idle)
        assert a.processes() == []
        b.send(pb, "still here")
        assert await inbox.get() == "still here"


async def test_links_between_nodes_in_one_loop_keep_each_node_s_books() -> None:
    """A link between processes of two nodes sharing a loop: each exit is booked by the node
    the process lives on, never by the other."""
    async with ember.Node("a") as a, ember.Node("b") as b:
        pa, a_inbox = await puppet(a, trap=True)
        pb, _ = await puppet(b)
        pb2, _ = await puppet(b)
        await inside(b, pb, lambda _: ember.link(pa))
        await inside(b, pb2, lambda _: ember.link(pb))
        b_procs = set(b.processes())
        exits = b.wait_exit(pb), b.wait_exit(pb2)
        b.exit(pb2, "custom")  # pb2 -> pb (both on b) -> pa (on a, trapping)
        assert list(await asyncio.gather(*exits)) == ["custom", "custom"]
        assert await a_inbox.get() == Exit(pb, "custom")
        assert set(b.processes()) == b_procs - {pb, pb2}
        assert pa in a.processes()
        assert a.statistics().counters["exited"] == 0
        assert b.statistics().counters["exited"] == 2

        # And the other way: a process of b dies of a's exit signal.
        pb3, _ = await puppet(b)
        await inside(b, pb3, lambda _: ember.link(pa))
        await inside(a, pa, lambda me: me.set_trap_exits(False))
        exits = a.wait_exit(pa), b.wait_exit(pb3)
        a.exit(pa, "custom")
        assert list(await asyncio.gather(*exits)) == ["custom", "custom"]
        assert pb3 not in b.processes() and pa not in a.processes()
        assert a.statistics().counters["exited"] == 1
        assert b.statistics().counters["exited"] == 3
