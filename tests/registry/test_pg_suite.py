"""OTP's pg_SUITE, ported: each case as OTP runs it, on whole nodes in one process over the
simulated network with virtual time (``ember.testing.SimCluster``).

OTP's ``sync(Scope)`` (wait until a scope has handled what was sent to it) becomes waiting for
the state the case then asserts; ``disconnect_nodes`` becomes dropping the connection (or a
partition, where the case needs the nodes kept apart while it works on both sides)."""

from __future__ import annotations

from typing import Any

import pytest
from registrykit import Sleeper, inside, kill, probe

import ember
from ember import Pid
from ember.registry import GroupEvent, NotLocal, UnknownScope
from ember.testing import SimCluster


async def spawn(node: ember.Node, n: int = 1) -> list[Pid]:
    return [await node.spawn(Sleeper) for _ in range(n)]


def members(node: ember.Node, group: Any) -> list[Pid]:
    return sorted(node.pg.get_members(group))


async def disconnect(sim: SimCluster, a: str, b: str) -> None:
    """Drop the connection between ``a`` and ``b`` and wait until both pg scopes saw it."""
    na, nb = sim.node(a), sim.node(b)
    assert na.transport is not None
    na.transport.disconnect(b)
    await sim.wait_for(
        lambda: b not in na.connected_nodes() and a not in nb.connected_nodes(),
        what=f"{a} and {b} disconnected",
    )


async def connect(sim: SimCluster, a: str, b: str) -> None:
    na = sim.node(a)
    assert na.transport is not None
    await na.transport.connect(b)


def peers(node: ember.Node, scope: str = "default") -> set[str]:
    return {p[0] for p in node.pg._scopes[scope].core.remote}


async def test_single() -> None:
    async with ember.Node("a") as node:
        me = await node.spawn(Sleeper)
        pg = node.pg
        pg.join("single", me)
        pg.join("single", [me, me])
        assert pg.get_local_members("single") == [me, me, me]
        assert pg.get_members("single") == [me, me, me]
        assert pg.leave("$missing$", me) == "not_joined"
        assert pg.leave("single", [me, me]) == "ok"
        assert pg.leave("single", me) == "ok"
        assert pg.which_groups() == [] and pg.get_members("single") == []
        pg.join("single", me)
        other = await node.spawn(Sleeper)
        pg.join("single", other)
        assert members(node, "single") == sorted([me, other])
        assert sorted(pg.get_local_members("single")) == sorted([me, other])
        await kill(node, other)
        assert pg.get_local_members("single") == [me]
        assert pg.leave("single", me) == "ok"


async def test_leave_exit_race() -> None:
    async with ember.Node("a") as node:
        for _ in range(100):
            pid = await node.spawn(Sleeper)
            node.exit(pid, ember.KILL)  # gone before (or while) it joins
            node.pg.join("test", pid)
            node.pg.leave("test", pid)
        await node.spawn(Sleeper)  # let the late exit reports run
        assert node.pg.get_members("test") == []
        assert node.pg._scopes["default"].core.local == {}


async def test_two() -> None:
    async with SimCluster(["a", "b"], seed=1) as sim:
        a, b = sim.node("a"), sim.node("b")
        [pid] = await spawn(a)
        a.pg.join("two", pid)
        assert a.pg.get_local_members("two") == [pid]
        await sim.wait_for(lambda: b.pg.get_members("two") == [pid], what="b sees the join")
        assert b.pg.get_local_members("two") == []
        await kill(a, pid)
        assert a.pg.get_local_members("two") == []
        await sim.wait_for(lambda: b.pg.get_members("two") == [], what="b sees the exit")
        pid2, pid3 = await spawn(b, 2)
        b.pg.join("two", pid2)
        b.pg.join("two", pid3)
        await sim.wait_for(lambda: members(a, "two") == sorted([pid2, pid3]), what="a sees b's")
        await sim.kill("b")
        await sim.wait_for(lambda: a.pg.get_members("two") == [], what="b's members gone")


async def test_initial() -> None:
    async with SimCluster(["a"], seed=2) as sim:
        a = sim.node("a")
        [pid] = await spawn(a)
        a.pg.join("initial", pid)
        b = await sim.add("b")
        await sim.wait_for(lambda: b.pg.get_members("initial") == [pid], what="b synced")
        assert b.pg.get_local_members("initial") == []
        await kill(a, pid)
        await sim.wait_for(lambda: b.pg.get_members("initial") == [], what="exit seen")


async def test_netsplit() -> None:
    async with SimCluster(["a", "b"], seed=3) as sim:
        a, b = sim.node("a"), sim.node("b")
        [old] = await spawn(b)
        b.pg.join("$invisible", old)
        await sim.wait_for(lambda: a.pg.get_members("$invisible") == [old], what="seen")
        sim.partition({"a"}, {"b"})
        await sim.wait_for(lambda: not peers(a) and not peers(b), what="both sides split")
        [remote] = await spawn(b)
        b.pg.join("netsplit", remote)  # a join in a partition
        assert b.pg.leave("$invisible", old) == "ok"
        b.pg.join("$visible", old)
        assert b.pg.get_local_members("$visible") == [old]
        [local] = await spawn(a)
        a.pg.join("netsplit", local)
        sim.heal()
        both = sorted([remote, local])
        await sim.wait_for(
            lambda: members(b, "netsplit") == both and members(a, "netsplit") == both,
            what="views merged after the heal",
        )
        assert a.pg.get_members("$visible") == [old]
        assert a.pg.get_members("$invisible") == []


async def test_trisplit() -> None:
    async with SimCluster(["a", "b"], seed=4) as sim:
        a, b = sim.node("a"), sim.node("b")
        _, pid2 = await spawn(b, 2)
        b.pg.join("three", pid2)
        await sim.wait_for(lambda: a.pg.get_members("three") == [pid2], what="a sees three")
        await disconnect(sim, "a", "b")
        await connect(sim, "a", "b")
        b.pg.join("one", pid2)
        c = await sim.add("c")
        await sim.wait_for(lambda: peers(c) == {"a", "b"}, what="c discovered both")
        await sim.wait_for(lambda: c.pg.get_members("one") == [pid2], what="c sees one")
        await sim.wait_for(lambda: a.pg.get_members("one") == [pid2], what="a sees one")


async def test_foursplit() -> None:
    async with SimCluster(["a", "b"], seed=5) as sim:
        a, b = sim.node("a"), sim.node("b")
        [pid] = await spawn(a)
        a.pg.join("one", pid)
        a.pg.join("two", pid)
        [peer_pid] = await spawn(b)
        assert a.pg.leave("one", pid) == "ok"
        assert a.pg.leave("three", pid) == "not_joined"
        await disconnect(sim, "a", "b")
        await kill(b, peer_pid)
        assert a.pg.leave("three", pid) == "not_joined"
        await connect(sim, "a", "b")
        await sim.wait_for(lambda: b.pg.get_members("two") == [pid], what="resynced")
        assert a.pg.get_members("one") == [] and b.pg.get_members("one") == []


async def test_exchange() -> None:
    async with SimCluster(["a", "b", "c"], seed=6) as sim:
        a, b, c = sim.node("a"), sim.node("b"), sim.node("c")
        pids10 = await spawn(b, 10)
        pids2 = await spawn(c, 10)
        pids11 = await spawn(b, 10)
        to_kill, pids1 = pids10[:3], pids10[3:]
        b.pg.join("exchange", pids10)
        await sim.wait_for(lambda: members(a, "exchange") == sorted(pids10), what="a sees b")
        for pid in to_kill:
            await kill(b, pid)
        await sim.wait_for(lambda: members(a, "exchange") == sorted(pids1), what="exits seen")
        sim.partition({"a"}, {"b", "c"})
        await sim.wait_for(lambda: not peers(a), what="a alone")
        assert a.pg.get_members("exchange") == []
        for pid in pids2:
            c.pg.join("exchange", pid)
        for pid in pids11:
            b.pg.join("second", pid)
        b.pg.join("third", pids11)
        sim.heal()
        everyone = sorted(pids1 + pids2 + pids11)
        await sim.wait_for(
            lambda: sorted(a.pg.get_members("second") + a.pg.get_members("exchange")) == everyone,
            what="a merged both peers",
        )
        assert members(a, "third") == sorted(pids11)
        left, stay = pids11[:3], pids11[3:]
        assert b.pg.leave("third", left) == "ok"
        await sim.wait_for(lambda: members(a, "third") == sorted(stay), what="leave seen")
        assert b.pg.leave("left", stay) == "not_joined"
        assert b.pg.leave("third", stay) == "ok"
        await sim.wait_for(lambda: a.pg.get_members("third") == [], what="third empty")


async def test_nolocal_and_process_owner_check() -> None:
    async with SimCluster(["a", "b"], seed=7) as sim:
        a, b = sim.node("a"), sim.node("b")
        [remote] = await spawn(b)
        [local] = await spawn(a)
        for bad in (remote, [remote, remote], [local, remote], ["undefined"]):
            with pytest.raises(NotLocal):
                a.pg.join("nolocal", bad)  # type: ignore[arg-type]
        with pytest.raises(ember.UsageError):
            a.pg.join("nolocal", "undefined")  # type: ignore[arg-type]
        b.pg.join("nolocal", remote)
        b.pg.join("nolocal", remote)
        await sim.wait_for(lambda: a.pg.get_members("nolocal") == [remote, remote], what="seen")
        assert a.pg.get_local_members("nolocal") == []


async def test_double() -> None:
    async with SimCluster(["a"], seed=8) as sim:
        a = sim.node("a")
        [pid] = await spawn(a)
        a.pg.join("double", pid)
        b = await sim.add("b")
        a.pg.join("double", [pid])
        assert a.pg.get_members("double") == [pid, pid]
        await sim.wait_for(lambda: b.pg.get_members("double") == [pid, pid], what="b sees 2")


async def test_scope_restart() -> None:
    async with SimCluster(["a", "b"], seed=9) as sim:
        a, b = sim.node("a"), sim.node("b")
        [pid] = await spawn(a)
        a.pg.join("scope_restart", [pid, pid])
        [remote] = await spawn(b)
        b.pg.join("scope_restart", remote)
        want = sorted([remote, pid, pid])
        await sim.wait_for(lambda: members(a, "scope_restart") == want, what="a sees all")
        a.pg.stop_scope("default")
        a.pg.start_scope("default")
        await sim.wait_for(
            lambda: a.pg.get_members("scope_restart") == [remote], what="remote pids back"
        )
        await sim.wait_for(
            lambda: b.pg.get_members("scope_restart") == [remote], what="b dropped a's"
        )


async def test_missing_scope_join() -> None:
    async with SimCluster(["a", "b"], seed=10) as sim:
        b = sim.node("b")
        b.pg.stop_scope("default")
        [remote] = await spawn(b)
        with pytest.raises(UnknownScope):
            b.pg.join("missing_scope_join", remote)
        with pytest.raises(UnknownScope):
            b.pg.leave("missing_scope_join", remote)


async def test_empty_group_by_remote_leave() -> None:
    async with SimCluster(["a", "b"], seed=11) as sim:
        a, b = sim.node("a"), sim.node("b")
        [remote] = await spawn(b)
        b.pg.join("empty", remote)
        await sim.wait_for(lambda: a.pg.get_members("empty") == [remote], what="joined")
        core = a.pg._scopes["default"].core
        [(peer, known)] = core.remote.items()
        assert peer[0] == "b" and known == {"empty": [remote]}
        assert b.pg.leave("empty", remote) == "ok"
        await sim.wait_for(lambda: a.pg.get_members("empty") == [], what="left")
        assert core.remote[peer] == {}  # the empty group is gone from b's map too
        [remote2] = await spawn(b)
        b.pg.join("empty", [remote, remote2])
        await sim.wait_for(
            lambda: a.pg.get_members("empty") == [remote, remote2], what="joined both"
        )
        assert b.pg.leave("empty", [remote2, remote]) == "ok"
        await sim.wait_for(lambda: a.pg.get_members("empty") == [], what="left both")
        assert core.remote[peer] == {}


async def test_disconnected_start() -> None:
    async with SimCluster(["a", "b"], seed=12) as sim:
        sim.partition({"a"}, {"b"})
        b = sim.node("b")
        b.pg.stop_scope("default")
        b.pg.start_scope("default")
        b.pg.stop_scope("default")
        [pid] = await spawn(b)
        assert isinstance(pid, Pid)
        sim.heal()


async def test_forced_sync() -> None:
    async with SimCluster(["a", "b"], seed=13) as sim:
        a, b = sim.node("a"), sim.node("b")
        [pid] = await spawn(a)
        [remote] = await spawn(b)
        expected = sorted([pid, remote])
        a.pg.join("one", pid)
        b.pg.join("one", remote)
        await disconnect(sim, "a", "b")
        await connect(sim, "a", "b")
        await sim.wait_for(lambda: members(a, "one") == expected, what="synced")
        # white box, as OTP's case: a broken sync from b's scope instance
        b_scope = b.pg._scopes["default"]
        fake = [("one", [remote, remote]), ("forced_sync", [remote, remote])]
        a.pg._on_frame("b", a.pg._codec.encode(("default", b_scope.instance, 0, ("sync", fake))))
        assert members(a, "forced_sync") == [remote, remote]
        assert members(a, "one") == sorted([remote, remote, pid])
        # a discover from a makes b send its true state
        a_scope = a.pg._scopes["default"]
        b.pg._on_frame("a", b.pg._codec.encode(("default", a_scope.instance, 0, ("discover",))))
        await sim.wait_for(lambda: members(a, "one") == expected, what="mended")
        assert a.pg.get_members("forced_sync") == []


async def test_group_leave() -> None:
    async with SimCluster(["a", "b"], seed=14) as sim:
        a, b = sim.node("a"), sim.node("b")
        [remote] = await spawn(b)
        b.pg.join("two", [remote] * 16)
        assert b.pg.leave("two", [remote] * 4) == "ok"
        await sim.wait_for(lambda: a.pg.get_members("two") == [remote] * 12, what="12 left")
        await sim.kill("b")
        await sim.wait_for(lambda: a.pg.get_members("two") == [], what="b gone")


async def test_monitor_nonempty_scope() -> None:
    async with SimCluster(["a", "b"], seed=15) as sim:
        a, b = sim.node("a"), sim.node("b")
        watcher, _ = await probe(a)
        [pid] = await spawn(a)
        [remote] = await spawn(b)
        a.pg.join("one", pid)
        b.pg.join("one", remote)
        await sim.wait_for(lambda: len(a.pg.get_members("one")) == 2, what="both joined")
        ref, scope = await inside(a, watcher, a.pg.monitor_scope)
        assert list(scope) == ["one"] and sorted(scope["one"]) == sorted([pid, remote])
        assert await inside(a, watcher, lambda: a.pg.demonitor(ref)) is True
        _, again = await inside(a, watcher, a.pg.monitor_scope)
        assert again == scope


@pytest.mark.parametrize("kind", ["monitor_scope", "monitor"])
async def test_monitor(kind: str) -> None:
    group = ("monitor", 1)
    async with SimCluster(["a", "b"], seed=16) as sim:
        a, b = sim.node("a"), sim.node("b")
        me, box = await probe(a)

        def start_monitor(node: ember.Node) -> Any:
            if kind == "monitor_scope":
                return node.pg.monitor_scope()[0]
            return node.pg.monitor(group)[0]

        ref = await inside(a, me, lambda: start_monitor(a))
        a.pg.join(group, me)
        assert await box.get() == GroupEvent(ref, "join", group, (me,))
        second, second_box = await probe(a)
        ref2 = await inside(a, second, lambda: start_monitor(a))
        third, third_box = await probe(b)  # on the other node, watching its own view
        ref3 = await inside(b, third, lambda: start_monitor(b))
        [remote] = await spawn(b)
        b.pg.join(group, [remote, remote])
        assert await box.get() == GroupEvent(ref, "join", group, (remote, remote))
        assert a.pg.get_local_members(group) == [me]
        assert a.pg.leave(group, me) == "ok"
        assert await box.get() == GroupEvent(ref, "leave", group, (me,))
        assert b.pg.leave(group, remote) == "ok"
        assert await box.get() == GroupEvent(ref, "leave", group, (remote,))
        expected = [
            GroupEvent(ref2, "join", group, (remote, remote)),
            GroupEvent(ref2, "leave", group, (me,)),
            GroupEvent(ref2, "leave", group, (remote,)),
        ]
        assert [await second_box.get() for _ in expected] == expected
        # b's own leave and a's (which crosses the network) may come in either order there
        expected3 = {GroupEvent(ref3, e.action, e.group, e.pids) for e in expected}
        assert {await third_box.get() for _ in expected3} == expected3
        await sim.kill("b")
        assert await box.get() == GroupEvent(ref, "leave", group, (remote,))
        core = a.pg._scopes["default"].core
        await kill(a, second)  # its monitor goes with it
        monitors = core.scope_monitors if kind == "monitor_scope" else core.group_monitors
        assert list(monitors) == [ref]
        assert await inside(a, me, lambda: a.pg.demonitor(ref)) is True
        assert await inside(a, me, lambda: a.pg.demonitor(ref)) is False
        a.pg.join(group, me)
        await inside(a, me, lambda: None)
        assert box.pending() == []


async def test_multi_monitor() -> None:
    async with ember.Node("a") as node:
        pid, box = await probe(node)

        def subscribe() -> tuple[Any, Any, Any]:
            one, _ = node.pg.monitor("one")
            two, _ = node.pg.monitor("two")
            scope, _ = node.pg.monitor_scope()
            node.pg.join("one", ember.self())
            node.pg.join("two", ember.self())
            return one, two, scope

        one, two, scope = await inside(node, pid, subscribe)
        got = {await box.get() for _ in range(4)}
        assert got == {
            GroupEvent(one, "join", "one", (pid,)),
            GroupEvent(scope, "join", "one", (pid,)),
            GroupEvent(two, "join", "two", (pid,)),
            GroupEvent(scope, "join", "two", (pid,)),
        }
        await kill(node, pid)
        core = node.pg._scopes["default"].core
        assert core.scope_monitors == {} and core.group_monitors == {}
        assert core.monitored_groups == {} and node.pg.which_groups() == []


async def test_thundering_herd() -> None:
    async with SimCluster(["a", "b"], seed=17) as sim:
        a, b = sim.node("a"), sim.node("b")
        [me] = await spawn(a)
        for seq in range(10_000):
            a.pg.join(("group", seq), me)
        [peer_pid] = await spawn(b)
        b_scope = b.pg._scopes["default"]
        await sim.wait_for(lambda: "b" in peers(a), what="a knows b")
        frame = b.pg._codec.encode(
            ("default", b_scope.instance, 0, ("sync", [(("group", 1), [peer_pid, peer_pid])]))
        )
        assert b.transport is not None
        for _ in range(2_000):
            b.transport.send("a", ember.transport.Channel.PG, frame)
        a.pg.join("thundering_herd", me)  # not queued behind the syncs: done at once
        assert a.pg.get_members("thundering_herd") == [me]
        await sim.wait_for(
            lambda: a.pg.get_members(("group", 1)) == [peer_pid, peer_pid, me], what="synced"
        )


# -- beyond OTP's suite -----------------------------------------------------------------------


async def test_broadcast_reaches_every_member_once_across_three_nodes() -> None:
    async with SimCluster(["a", "b", "c"], seed=18) as sim:
        boxes = {}
        for name in ("a", "b", "c"):
            node = sim.node(name)
            pid, box = await probe(node)
            node.pg.join("workers", [pid, pid])  # twice: still one delivery
            boxes[name] = box
        a = sim.node("a")
        await sim.wait_for(lambda: len(a.pg.get_members("workers")) == 6, what="all joined")
        assert a.pg.broadcast("workers", ("job", 1)) == 3
        for box in boxes.values():
            assert await box.get() == ("job", 1)
        assert a.pg.broadcast("workers", ("job", 2), local_only=True) == 1
        assert await boxes["a"].get() == ("job", 2)
        await inside(sim.node("b"), sim.node("b").pg.get_local_members("workers")[0], lambda: 0)
        assert boxes["b"].pending() == [] and boxes["c"].pending() == []
        assert a.pg.broadcast("nobody", "x") == 0


async def test_a_full_pg_queue_falls_back_to_a_full_sync() -> None:
    from ember.transport._config import ChannelPolicy, TransportConfig

    small = TransportConfig(
        pg_queue=ChannelPolicy(max_frames=8, max_bytes=8 * 1024 * 1024 + 64, overflow="reject"),
        write_buffer_high=4096,
    )
    async with SimCluster(["a", "b"], seed=19, node_options={"config": small}) as sim:
        a, b = sim.node("a"), sim.node("b")
        [pid] = await spawn(a)
        await sim.wait_for(lambda: "a" in peers(b), what="b knows a")
        sim.partition({"a"}, {"b"})  # frames are held: the queue to b fills
        for i in range(200):
            a.pg.join(("g", i), pid)
        sim.heal()
        stats = a.pg.statistics()
        assert stats["overflows"] > 0
        await sim.wait_for(lambda: len(b.pg.which_groups()) == 200, what="b has every group")
        assert a.pg.statistics()["resyncs"] >= 1
