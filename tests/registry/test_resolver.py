"""The kernel's resolver hook: ``ember.Name`` destinations wherever a pid is accepted, the
kernel's exit watches and mailbox flush used by the registry layers."""

from __future__ import annotations

from typing import Any

import pytest
from registrykit import Sleeper, inside, kill, probe

import ember
from ember import Down, Exit, Name


class Echo(ember.Actor):
    def receive(self, msg: Any) -> Any:
        return ("echo", msg)


async def test_send_cast_and_call_reach_a_name() -> None:
    async with ember.Node("a") as node:
        pid, box = await probe(node)
        await node.names.register("box", pid)
        ember.send(Name("box"), 1)
        ember.cast(Name("box", tier="local"), 2)
        node.send(Name("box"), 3)
        assert [await box.get() for _ in range(3)] == [1, 2, 3]
        echo = await node.spawn(Echo)
        await node.names.register("echo", echo)
        assert await ember.call(Name("echo"), "hi") == ("echo", "hi")
        assert await node.call(Name("echo", tier="local"), "x") == ("echo", "x")


async def test_unknown_names_fail_as_unknown_local_names_do() -> None:
    async with ember.Node("a") as node:
        with pytest.raises(ember.UnknownName):
            ember.send(Name("nobody"), "hi")
        ember.cast(Name("nobody"), "hi")  # never raises: counted
        assert node.statistics().counters["dropped_dead"] == 1
        with pytest.raises(ember.NoProc):
            await ember.call(Name("nobody"), "hi")


async def test_monitor_and_link_by_name() -> None:
    async with ember.Node("a") as node:
        watcher, box = await probe(node)
        target = await node.spawn(Sleeper)
        await node.names.register("target", target)
        ref = await inside(node, watcher, lambda: ember.monitor(Name("target")))
        await kill(node, target)
        assert await box.get() == Down(ref, target, ember.KILLED)
        # a name that names nobody: Down noproc at once, naming the name
        ref = await inside(node, watcher, lambda: ember.monitor(Name("gone")))
        assert await box.get() == Down(ref, Name("gone"), ember.NOPROC)

        def link_gone() -> Any:
            try:
                ember.link(Name("gone"))
            except ember.NoProc as exc:
                return exc
            return None

        err = await inside(node, watcher, link_gone)
        assert isinstance(err, ember.NoProc) and err.pid == Name("gone")
        other = await node.spawn(Sleeper)
        await node.names.register("other", other)
        await inside(node, watcher, lambda: ember.trap_exits(True))
        await inside(node, watcher, lambda: ember.link(Name("other")))
        assert node.process_info(other).links == (watcher,)  # type: ignore[union-attr]
        await inside(node, watcher, lambda: ember.unlink(Name("other")))
        assert node.process_info(other).links == ()  # type: ignore[union-attr]
        await inside(node, watcher, lambda: ember.link(Name("gone")))
        assert await box.get() == Exit(Name("gone"), ember.NOPROC)  # the name it was given


async def test_a_name_follows_its_process_and_is_freed() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Sleeper)
        await node.names.register("w", pid)
        assert node.names.whereis("w") == pid
        await kill(node, pid)
        assert node.names.whereis("w") is None
        with pytest.raises(ember.UnknownName):
            ember.send(Name("w"), "late")


async def test_watch_calls_back_once_on_exit_and_unwatch_stops_it() -> None:
    async with ember.Node("a") as node:
        seen: list[tuple[ember.Pid, Any]] = []
        pid = await node.spawn(Sleeper)
        handle = node.watch(pid, lambda p, r: seen.append((p, r)))
        other = await node.spawn(Sleeper)
        undone = node.watch(other, lambda p, r: seen.append((p, r)))
        node.unwatch(undone)
        await kill(node, other)
        await kill(node, pid)
        assert seen == [(pid, ember.KILLED)]
        assert handle is not None
        assert node.watch(pid, lambda p, r: seen.append((p, r))) is None  # gone: no handle
        node.unwatch(handle)  # after it fired: a no-op


async def test_flush_messages_removes_only_matching_ones() -> None:
    async with ember.Node("a") as node:
        pid, box = await probe(node)

        async def fill_then_flush() -> int:
            me = ember.self()
            for m in ("keep", ("drop", 1), "keep2", ("drop", 2)):
                ember.send(me, m)
            return node.flush_messages(lambda m: isinstance(m, tuple) and m[0] == "drop")

        assert await inside(node, pid, fill_then_flush) == 2
        assert [await box.get(), await box.get()] == ["keep", "keep2"]
        assert box.pending() == []


async def test_is_alive_is_true_only_for_a_live_local_process() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Sleeper)
        assert node.is_alive(pid) is True
        assert node.is_alive(ember.Pid("elsewhere", 1, 1)) is False
        await kill(node, pid)
        assert node.is_alive(pid) is False
