"""Monitors: Down messages, stacking, noproc, demonitor (with flush), cleanup and wait_exit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from actorkit import Boom, Do, Idle, Puppet, flush, inside, puppet, raising

import ember
from ember import Down


async def monitor(node: ember.Node, watcher: ember.Pid, target: ember.Pid) -> ember.Ref:
    """Monitor ``target`` from inside ``watcher``."""
    ref: ember.Ref = await inside(node, watcher, lambda _: ember.monitor(target))
    return ref


async def test_monitor_delivers_down_with_the_reason_once() -> None:
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node)
        target, _ = await puppet(node)
        ref = await monitor(node, watcher, target)
        assert isinstance(ref, ember.Ref)
        await inside(node, target, lambda me: me.stop("custom"))
        assert await inbox.get() == Down(ref, target, "custom")
        await flush(node, watcher)
        assert inbox.pending() == []
        info = node.process_info(watcher)
        assert info is not None and info.monitoring == ()
        assert node.process_info(watcher) is not None  # a monitor is not a link


async def test_down_carries_a_crash_exception() -> None:
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node)
        target, _ = await puppet(node)
        ref = await monitor(node, watcher, target)
        boom = Boom()
        node.send(target, raising(boom))
        down = await inbox.get()
        assert down.ref == ref and down.pid == target and down.reason is boom


async def test_down_for_normal_and_killed() -> None:
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node)
        a, _ = await puppet(node)
        b, _ = await puppet(node)
        ref_a = await monitor(node, watcher, a)
        ref_b = await monitor(node, watcher, b)
        await inside(node, a, lambda me: me.stop())
        node.exit(b, "kill")
        assert await inbox.get() == Down(ref_a, a, "normal")
        assert await inbox.get() == Down(ref_b, b, "killed")


async def test_monitors_stack() -> None:
    """Each monitor call makes a separate monitor that fires once, with its own ref."""
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node)
        target, _ = await puppet(node)
        ref1 = await monitor(node, watcher, target)
        ref2 = await monitor(node, watcher, target)
        assert ref1 != ref2
        assert node.process_info(target).monitored_by == 2  # type: ignore[union-attr]
        assert node.process_info(watcher).monitoring == (target, target)  # type: ignore[union-attr]
        node.exit(target, "custom")
        downs = [await inbox.get(), await inbox.get()]
        assert sorted(downs, key=lambda d: d.ref) == [
            Down(ref1, target, "custom"),
            Down(ref2, target, "custom"),
        ]
        await flush(node, watcher)
        assert inbox.pending() == []


async def test_demonitor_of_one_stacked_monitor_keeps_the_other() -> None:
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node)
        target, _ = await puppet(node)
        ref1 = await monitor(node, watcher, target)
        ref2 = await monitor(node, watcher, target)
        assert await inside(node, watcher, lambda _: ember.demonitor(ref1)) is True
        node.exit(target, "custom")
        assert await inbox.get() == Down(ref2, target, "custom")
        await flush(node, watcher)
        assert inbox.pending() == []


async def test_monitor_of_a_dead_pid_gives_an_immediate_down_noproc() -> None:
    async with ember.Node("a") as node:
        dead = await node.spawn(Idle)
        node.exit(dead, "kill")
        watcher, inbox = await puppet(node)

        def monitor_and_look(me: Puppet) -> Any:
            ref = ember.monitor(dead)
            # Already in the mailbox when monitor returns.
            return ref, node.process_info(me.pid).mailbox_len  # type: ignore[union-attr]

        ref, queued = await inside(node, watcher, monitor_and_look)
        assert queued == 1
        assert await inbox.get() == Down(ref, dead, "noproc")
        assert node.process_info(watcher).monitoring == ()  # type: ignore[union-attr]


async def test_demonitor_prevents_down() -> None:
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node)
        target, _ = await puppet(node)
        ref = await monitor(node, watcher, target)
        assert await inside(node, watcher, lambda _: ember.demonitor(ref)) is True
        assert await inside(node, watcher, lambda _: ember.demonitor(ref)) is False
        assert node.process_info(target).monitored_by == 0  # type: ignore[union-attr]
        node.exit(target, "custom")
        await flush(node, watcher)
        assert inbox.received == []


async def test_demonitor_flush_removes_an_already_delivered_down() -> None:
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node)
        target, _ = await puppet(node)
        other, _ = await puppet(node)
        ref = await monitor(node, watcher, target)
        other_ref = await monitor(node, watcher, other)

        def kill_then_demonitor(_: Puppet) -> tuple[bool, int]:
            ember.exit(target, "kill")
            ember.exit(other, "kill")
            queued = node.process_info(watcher).mailbox_len  # type: ignore[union-attr]
            return ember.demonitor(ref, flush=True), queued

        active, queued = await inside(node, watcher, kill_then_demonitor)
        assert queued == 2  # both Downs were delivered before demonitor
        assert active is False  # the monitor had already fired
        await flush(node, watcher)
        assert inbox.received == [Down(other_ref, other, "killed")]  # only its own Down went


async def test_demonitor_without_flush_leaves_a_delivered_down() -> None:
    async with ember.Node("a") as node:
        watcher, inbox = await puppet(node)
        target, _ = await puppet(node)
        ref = await monitor(node, watcher, target)

        def kill_then_demonitor(_: Puppet) -> bool:
            ember.exit(target, "kill")
            return ember.demonitor(ref)

        assert await inside(node, watcher, kill_then_demonitor) is False
        assert await inbox.get() == Down(ref, target, "killed")


async def test_a_watchers_exit_removes_its_monitors_from_the_target() -> None:
    async with ember.Node("a") as node:
        target, _ = await puppet(node)
        watchers = [await puppet(node) for _ in range(3)]
        for w, _inbox in watchers:
            await monitor(node, w, target)
            await monitor(node, w, target)
        assert node.process_info(target).monitored_by == 6  # type: ignore[union-attr]
        for w, _inbox in watchers:
            exited = node.wait_exit(w)
            node.exit(w, "custom")
            await exited
        assert node.process_info(target).monitored_by == 0  # type: ignore[union-attr]


async def test_spawn_monitor_monitors_before_the_child_runs() -> None:
    async with ember.Node("a") as node:
        parent, inbox = await puppet(node)
        boom = Boom()
        pid, ref = await inside(node, parent, lambda _: ember.spawn_monitor(_CrashAtOnce, boom))
        down = await inbox.get()
        assert (down.ref, down.pid) == (ref, pid) and down.reason is boom
        assert node.process_info(parent) is not None  # not linked


async def test_spawn_monitor_start_failure_reaches_the_spawner_as_start_error_only() -> None:
    """As for spawn_link: the spawner of a child whose started fails learns it from
    StartError; the monitor is removed first, so no Down with a ref it never got follows."""
    async with ember.Node("a") as node:
        spawner, inbox = await puppet(node)
        boom = Boom()

        async def spawn_it(_: Puppet) -> Any:
            try:
                await ember.spawn_monitor(_FailsToStart, boom)
            except ember.StartError as exc:
                return exc
            return None

        err = await inside(node, spawner, spawn_it)
        assert isinstance(err, ember.StartError) and err.reason is boom
        await flush(node, spawner)
        assert inbox.pending() == []
        info = node.process_info(spawner)
        assert info is not None and info.monitoring == ()


class _FailsToStart(ember.Actor):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def started(self) -> None:
        raise self.exc


class _CrashAtOnce(ember.Actor):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def started(self) -> None:
        ember.send(self.pid, "go")

    async def receive(self, msg: Any) -> Any:
        raise self.exc


async def test_monitor_and_link_need_a_calling_process() -> None:
    async with ember.Node("a") as node:
        target = await node.spawn(Idle)
        with pytest.raises(ember.UsageError):
            ember.monitor(target)
        with pytest.raises(ember.UsageError):
            ember.link(target)


async def test_wait_exit_from_outside_any_process() -> None:
    async with ember.Node("a") as node:
        pid, _ = await puppet(node)
        first, second = node.wait_exit(pid), node.wait_exit(pid)
        assert not first.done()
        node.send(pid, Do(lambda me: me.stop("bye")))
        assert await first == "bye"
        assert await second == "bye"
        assert await node.wait_exit(pid) == "noproc"  # already gone
        assert await node.wait_exit(ember.Pid("a", 10**9, 1)) == "noproc"  # never existed
        assert node.process_info(pid) is None


async def test_wait_exit_does_not_count_as_a_monitor() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Idle)
        waiter = node.wait_exit(pid)
        assert node.process_info(pid).monitored_by == 0  # type: ignore[union-attr]
        node.exit(pid, "kill")
        assert await asyncio.wait_for(waiter, 1.0) == "killed"


async def test_abandoned_wait_exit_leaves_nothing_behind() -> None:
    """A wait_exit given up on (a timeout cancels it) must not stay registered on a process
    that lives on: polling with a timeout would grow it without bound. (White-box: the
    process's monitor table is not visible through the API.)"""
    async with ember.Node("a") as node:
        pid = await node.spawn(Idle)
        for _ in range(100):
            try:
                await asyncio.wait_for(node.wait_exit(pid), 0.01)
            except TimeoutError:
                pass
        proc = node._lookup(pid)
        assert proc is not None and not proc._monitors
        exited = node.wait_exit(pid)
        node.exit(pid, "custom")
        assert await exited == "custom"
