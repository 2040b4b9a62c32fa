"""Shared by the chaos driver tests on real processes."""

from __future__ import annotations

BOUND = 60.0


async def assert_cut_is_seen_and_heals(driver) -> None:
    """Cut n1 off from n2 and n3: both see it suspect or failed; heal: it is alive again."""
    procs = driver.procs
    await driver.cut({frozenset(("n1", "n2")), frozenset(("n1", "n3"))})
    await procs.wait_for(
        lambda: (
            procs.nodes["n2"].statuses().get("n1") in ("suspect", "failed")
            and procs.nodes["n3"].statuses().get("n1") in ("suspect", "failed")
        ),
        BOUND,
        "n1 cut off",
    )
    await driver.cut(set())
    await procs.wait_for(
        lambda: procs.nodes["n2"].statuses().get("n1") == "alive", BOUND, "n1 back"
    )
