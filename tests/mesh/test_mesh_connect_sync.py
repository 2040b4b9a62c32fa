"""A node whose transport connects to a member its mesh holds failed syncs with it at once:
the shell tells its core of every connection that opens (``Swim.connected``, through the
distribution's node listener), on the simulated network. How much sooner the views re-form is
the core's matter (``test_mesh_sim.py``): on the simulated network the mesh's own frames wait
across a cut and arrive at the heal, so views re-form quickly here with or without it."""

from __future__ import annotations

import asyncio

from ember.mesh import MemberStatus
from ember.testing import SimCluster

FAILED = MemberStatus.FAILED


def status(sim: SimCluster, observer: str, of: str) -> MemberStatus | None:
    member = next((m for m in sim.node(observer).members() if m.name == of), None)
    return None if member is None else member.status


async def test_a_connection_to_a_member_held_failed_re_forms_the_view_at_once() -> None:
    async with SimCluster(5, seed=9) as sim:
        # A minority of two: they see each other alive, so they do not rejoin through the
        # seeds as a lonely node would; only a reconnect or a push-pull would find the others.
        sim.partition({"n3", "n4"})
        await sim.wait_for(
            lambda: (
                all(status(sim, o, m) is FAILED for o in ("n0", "n1", "n2") for m in ("n3", "n4"))
                and all(
                    status(sim, o, m) is FAILED for o in ("n3", "n4") for m in ("n0", "n1", "n2")
                )
            ),
            timeout=120,
            what="each side failed on the other",
        )
        mesh = sim.node("n0").mesh
        assert mesh is not None
        loop = asyncio.get_running_loop()
        sim.heal()
        healed = loop.time()
        before = mesh.statistics().swim.connect_syncs
        transport = sim.node("n0").transport
        assert transport is not None
        async with asyncio.timeout(5):
            await transport.connect("n4")  # a frame between them opens a connection
        await sim.wait_converged(timeout=1.0)
        assert mesh.statistics().swim.connect_syncs > before
        print(f"one view {loop.time() - healed:.2f} s after the heal")
