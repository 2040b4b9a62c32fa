"""The local tier of ``node.names``: the kernel's names, with name monitors and the rules
shared with the global tiers."""

from __future__ import annotations

import pytest
from registrykit import Sleeper, inside, kill, probe

import ember
from ember import Down
from ember.registry import RELEASED, TierUnavailable


async def test_register_whereis_registered_unregister() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Sleeper)
        assert await node.names.register("svc", pid) is None
        assert node.names.whereis("svc") == pid
        assert node.names.whereis("svc", "local") == pid
        assert ember.whereis("svc") == pid  # the kernel's own table
        assert "svc" in node.names.registered("local")
        reg = node.names.lookup("svc")
        assert reg is not None and (reg.pid, reg.tier, reg.token) == (pid, "local", None)
        await node.names.unregister("svc")
        assert node.names.whereis("svc") is None
        with pytest.raises(ember.UnknownName):
            await node.names.unregister("svc")


async def test_name_taken_says_who_holds_it() -> None:
    async with ember.Node("a") as node:
        first = await node.spawn(Sleeper)
        second = await node.spawn(Sleeper)
        await node.names.register("one", first)
        with pytest.raises(ember.NameTaken) as taken:
            await node.names.register("one", second)
        assert taken.value.owner == first


async def test_bad_arguments_are_usage_errors() -> None:
    async with ember.Node("a") as node:
        pid = await node.spawn(Sleeper)
        with pytest.raises(ember.UsageError):
            await node.names.register("x", pid, tier="global")  # type: ignore[arg-type]
        with pytest.raises(ember.UsageError):
            await node.names.register("x", "not a pid")  # type: ignore[arg-type]
        with pytest.raises(ember.UsageError):
            await node.names.register("x", pid, on_conflict="kill")  # local: no conflicts
        with pytest.raises(ember.UsageError):
            await node.names.register(["unhashable"], pid, tier="eventual")
        with pytest.raises(ember.UsageError):
            ember.Name("x", tier="eventual", fence=3)
        with pytest.raises(ember.UsageError):
            ember.Name("x", fence=0)
        assert ember.Name("x", fence=3).tier == "consistent"


async def test_a_global_tier_a_node_does_not_run_is_unavailable() -> None:
    async with ember.Node("a") as node:
        node.names.tiers.pop("consistent", None)
        pid = await node.spawn(Sleeper)
        with pytest.raises(TierUnavailable) as err:
            await node.names.register("x", pid, tier="consistent")
        assert err.value.tier == "consistent"


async def test_name_monitor_fires_on_release_and_on_exit() -> None:
    async with ember.Node("a") as node:
        watcher, box = await probe(node)
        pid = await node.spawn(Sleeper)
        await node.names.register("n", pid)
        ref = await inside(node, watcher, lambda: node.names.monitor("n"))
        await node.names.unregister("n")
        assert await box.get() == Down(ref, pid, RELEASED)
        await node.names.register("n", pid)
        ref = await inside(node, watcher, lambda: node.names.monitor("n"))
        await kill(node, pid)
        assert await box.get() == Down(ref, pid, RELEASED)
        ref = await inside(node, watcher, lambda: node.names.monitor("n"))
        assert await box.get() == Down(ref, "n", ember.NOPROC)
        other = await node.spawn(Sleeper)
        await node.names.register("m", other)
        ref = await inside(node, watcher, lambda: node.names.monitor("m"))
        assert node.names.demonitor(ref) is True
        assert node.names.demonitor(ref) is False
        await node.names.unregister("m")
        await inside(node, watcher, lambda: None)
        assert box.pending() == []


async def test_monitor_needs_a_process() -> None:
    async with ember.Node("a") as node:
        with pytest.raises(ember.UsageError):
            node.names.monitor("n")


async def test_names_and_pg_exist_only_once_started() -> None:
    node = ember.Node("a")
    with pytest.raises(ember.UsageError):
        node.names  # noqa: B018
    with pytest.raises(ember.UsageError):
        node.pg  # noqa: B018
    with pytest.raises(ember.UsageError):
        ember.Node("b", registry="expect=3")  # type: ignore[arg-type]


async def test_module_level_shortcuts_act_on_the_current_node() -> None:
    from ember import registry
    from ember.registry import pg

    async with ember.Node("a") as node:
        pid, box = await probe(node)
        await registry.register("short", pid)
        assert registry.whereis("short") == pid == registry.lookup("short").pid  # type: ignore[union-attr]
        assert "short" in registry.registered("local")
        assert (await registry.wait_for("short")).pid == pid
        ref = await inside(node, pid, lambda: registry.monitor("short"))
        assert registry.demonitor(ref) is True
        await registry.unregister("short")
        assert registry.whereis("short") is None
        pg.join("g", pid)
        assert pg.get_members("g") == pg.get_local_members("g") == [pid]
        assert pg.which_groups() == pg.which_local_groups() == ["g"]
        assert pg.broadcast("g", "hello") == 1
        assert await box.get() == "hello"
        ref, groups = await inside(node, pid, pg.monitor_scope)
        assert groups == {"g": [pid]}
        assert await inside(node, pid, lambda: pg.demonitor(ref)) is True
        _, members = await inside(node, pid, lambda: pg.monitor("g"))
        assert members == [pid] and pg.leave("g", pid) == "ok"
    with pytest.raises(ember.UsageError):
        registry.whereis("outside any node")
