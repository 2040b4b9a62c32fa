"""Nemeses, the pure part: which nodes a target spec picks, which links a partition cuts, and
when each fault of a scenario starts and stops.

Targets follow Jepsen: ``one``, ``minority`` (fewer than half), ``majority`` (more than half),
``all``, ``leader``, ``followers``, ``none``, or named nodes. A partition is a set of cut links
(unordered pairs), which expresses the non-transitive shapes too: ``ring`` (each node sees its
nearest neighbours, a majority, and neighbouring majorities overlap) and ``bridge`` (two halves
that only one node sees both of). Randomness comes in as an argument.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._scenario import FaultSpec, Scenario

__all__ = ["Link", "Step", "cut_links", "majority", "resolve_targets", "schedule"]

Link = frozenset[str]


def majority(n: int) -> int:
    """The smallest majority of ``n`` nodes."""
    return n // 2 + 1


def resolve_targets(
    target: str | tuple[str, ...], nodes: Sequence[str], leader: str | None, rng: random.Random
) -> tuple[str, ...]:
    """The nodes ``target`` picks among ``nodes`` (the live ones, in a stable order)."""
    pool = list(nodes)
    if isinstance(target, tuple):
        return tuple(n for n in target if n in pool)
    n = len(pool)
    if target == "all":
        return tuple(pool)
    if target == "none" or n == 0:
        return ()
    if target == "one":
        return (rng.choice(pool),)
    if target == "leader":
        return (leader,) if leader in pool else ()
    if target == "followers":
        return tuple(p for p in pool if p != leader)
    size = n - majority(n) if target == "minority" else majority(n)
    return tuple(sorted(rng.sample(pool, max(size, 1 if target == "minority" else size))))


def _pairs(a: Iterable[str], b: Iterable[str]) -> set[Link]:
    return {frozenset((x, y)) for x in a for y in b if x != y}


def cut_links(
    mode: str, nodes: Sequence[str], targets: Sequence[str], rng: random.Random
) -> set[Link]:
    """The links a partition of ``mode`` cuts (``isolate`` cuts ``targets`` off the rest; the
    other modes shape all ``nodes`` and ignore ``targets``)."""
    if mode == "isolate":
        inside = set(targets)
        return _pairs(inside, [n for n in nodes if n not in inside])
    order = list(nodes)
    rng.shuffle(order)
    n = len(order)
    if mode == "halves":
        return _pairs(order[: n // 2], order[n // 2 :])
    if mode == "bridge":
        side = (n - 1) // 2
        return _pairs(order[:side], order[side : n - 1])
    if mode == "ring":
        reach = math.ceil((majority(n) - 1) / 2)
        cuts: set[Link] = set()
        for i in range(n):
            for j in range(i + 1, n):
                if min(j - i, n - (j - i)) > reach:
                    cuts.add(frozenset((order[i], order[j])))
        return cuts
    raise ValueError(f"unknown partition mode {mode!r}")


@dataclass(frozen=True, slots=True)
class Step:
    """One fault of the run: it starts ``start`` seconds into the workload and is undone at
    ``stop`` (the end of the workload at the latest, when the final phase heals everything)."""

    start: float
    stop: float
    fault: FaultSpec


def schedule(scenario: Scenario, rng: random.Random) -> list[Step]:
    """Every fault of ``scenario`` with its times: the timeline's, then the generator's (one
    fault at a time: pick, run for its duration, wait ``interval``), by start time."""
    end = scenario.duration
    steps = [
        Step(f.at, min(end, f.at + f.duration) if f.duration else end, f)
        for f in scenario.timeline
        if f.at is not None
    ]
    gen = scenario.generator
    if gen is not None:
        t = gen.start
        while t < end:
            f = rng.choice(gen.faults)
            length = f.duration if f.duration is not None else gen.interval
            stop = min(end, t + length)
            steps.append(Step(t, stop, f))
            t = stop + gen.interval
    steps.sort(key=lambda s: (s.start, s.stop))
    return steps
