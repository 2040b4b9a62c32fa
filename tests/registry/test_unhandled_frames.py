"""REGISTRY frames a node cannot take: a frame of a tier the node does not run is counted as
unhandled (by kind), not as malformed; a frame that does not decode, or has no kind, is."""

from __future__ import annotations

import logging

import pytest
from registrykit import Sleeper

from ember._services import send_to_node
from ember.registry import RegistryConfig
from ember.testing import SimCluster
from ember.transport._frame import Channel

TOOL = {"cli": {"registry": RegistryConfig.local(replicate=False)}}


async def test_a_tool_node_counts_pushes_of_tiers_it_does_not_run_as_unhandled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with SimCluster(["a", "b", "cli"], seed=61, per_node=TOOL) as sim:
        a, b, cli = sim.node("a"), sim.node("b"), sim.node("cli")
        await sim.wait_for(lambda: "cli" in a.connected_nodes(), what="a connected to cli")
        pid = await a.spawn(Sleeper)
        with caplog.at_level(logging.DEBUG, logger="ember.registry"):
            await a.names.register("svc", pid, tier="eventual")
            await sim.wait_for(lambda: b.names.whereis("svc") == pid, what="b saw it")
            await sim.wait_for(
                lambda: cli.names.statistics()["unhandled_frames"].get("eventual", 0) >= 1,
                what="the push to cli counted",
            )
        stats = cli.names.statistics()
        assert stats["malformed"] == 0
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_true_malformed_frames_are_still_malformed() -> None:
    async with SimCluster(["a", "cli"], seed=62, per_node=TOOL) as sim:
        a, cli = sim.node("a"), sim.node("cli")
        await sim.wait_for(lambda: "cli" in a.connected_nodes(), what="connected")
        send_to_node(a, "cli", Channel.REGISTRY, b"\xc1 not msgpack")
        send_to_node(a, "cli", Channel.REGISTRY, a.names.codec.encode(("no", "kind")))
        send_to_node(a, "cli", Channel.REGISTRY, a.names.codec.encode((99, "x")))
        await sim.wait_for(
            lambda: (
                cli.names.statistics()["malformed"] == 2
                and cli.names.statistics()["unhandled_frames"] == {"kind 99": 1}
            ),
            what="two malformed frames and one of an unknown kind",
        )
