"""Links and monitors between node processes started through the CLI: spawn_link and
spawn_monitor on another node are atomic, and ``(name, node)`` destinations are looked up on
their node. The test process joins as node ``tester``; its process is the spawner/watcher."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import ember
from ember import Down, Exit
from ember.testing._localcluster import LocalCluster

pytestmark = pytest.mark.ember_realtime

BOUND = 60.0  # generous: the machine is shared and small
CRASH = ("exception", "builtins.RuntimeError", "crashed at once")


class Parent(ember.Actor):
    """Does what it is asked to on other nodes and keeps every other message."""

    trap_exits = True

    def __init__(self, inbox: asyncio.Queue[Any]) -> None:
        self.inbox = inbox

    async def receive(self, msg: Any) -> Any:
        match msg:
            case (("spawn_link" | "spawn_monitor") as how, target, node):
                spawn = ember.spawn_link if how == "spawn_link" else ember.spawn_monitor
                try:
                    return await spawn(target, on=node)
                except ember.EmberError as exc:
                    return exc
            case ("monitor", dest):
                return ember.monitor(dest)
            case ("link", dest):
                ember.link(dest)
            case _:
                self.inbox.put_nowait(msg)
        return None


async def test_links_and_monitors_between_processes_come_with_the_spawn_and_by_name(
    tmp_path,
) -> None:
    async with asyncio.timeout(BOUND * 2):
        cluster = LocalCluster(2, workdir=tmp_path, extra_args=("--spawn-allow", "tests"))
        await cluster.start()
        try:
            async with ember.Node("tester", listen="127.0.0.1:0", cookie=cluster.cookie) as me:
                for n in cluster.nodes.values():
                    await me.connect_node(n.spec)
                inbox: asyncio.Queue[Any] = asyncio.Queue()
                parent = await me.spawn(Parent, inbox)
                crash = "tests.integration.actors:CrashAtOnce"
                child = await me.call(parent, ("spawn_link", crash, "n1"))
                assert child.node == "n1"
                assert await inbox.get() == Exit(child, CRASH)
                child, ref = await me.call(parent, ("spawn_monitor", crash, "n2"))
                assert await inbox.get() == Down(ref, child, CRASH)
                failed = "tests.integration.actors:FailsToStart"
                err = await me.call(parent, ("spawn_link", failed, "n1"))
                assert isinstance(err, ember.StartError)

                echo = await me.spawn("tests.integration.actors:Echo", name="echo", on="n2")
                ref = await me.call(parent, ("monitor", ("echo", "n2")))
                await me.call(parent, ("link", ("echo", "n2")))
                me.exit(echo, "bye")
                got = {type(m).__name__: m for m in [await inbox.get(), await inbox.get()]}
                assert got == {"Down": Down(ref, echo, "bye"), "Exit": Exit(echo, "bye")}
                ref = await me.call(parent, ("monitor", ("echo", "n2")))  # gone now
                assert await inbox.get() == Down(ref, ("echo", "n2"), "noproc")
                await me.call(parent, ("link", ("echo", "n2")))
                assert await inbox.get() == Exit(("echo", "n2"), "noproc")
                assert me.is_alive(parent)
        finally:
            assert (await cluster.stop()) == {"n1": 0, "n2": 0}
