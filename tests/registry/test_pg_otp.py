"""The differential check: the same random pg scenarios (joins, double joins, leaves, exits,
netsplits and heals) run on real OTP ``pg`` nodes (``otp/pg_scenario.escript``, three peer
nodes started by ``peer``) and on Ember nodes (``SimCluster``, virtual time), and what every node
sees of every group at each checkpoint, and what every ``leave`` returns, must be the same.

Needs ``escript`` (Debian's ``erlang-base``, which ``.ci/run`` installs); skipped without it.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registrykit import Sleeper, kill

import ember
from ember.testing import SimCluster

ESCRIPT = shutil.which("escript")
EPMD = shutil.which("epmd")
pytestmark = pytest.mark.skipif(ESCRIPT is None, reason="needs escript (Debian's erlang-base)")

SCRIPT = Path(__file__).parent / "otp" / "pg_scenario.escript"
NODES = ("a", "b", "c")
GROUPS = ("g1", "g2", "g3")
Step = list[str]


def scenario(index: int, rng: random.Random) -> Iterator[Step]:
    """One random scenario: its processes, operations and checkpoints, as OTP's script reads
    them. Operations go only to live processes; a netsplit isolates one node, and every
    scenario ends healed."""
    yield ["scope", f"s{index}"]
    alive: list[tuple[str, str]] = []
    joined: dict[str, list[str]] = {}
    isolated: str | None = None
    counter = 0
    for n in range(rng.randint(15, 30)):
        roll = rng.random()
        if roll < 0.2 or not alive:
            node = rng.choice(NODES)
            counter += 1
            label = f"p{index}_{node}{counter}"
            alive.append((label, node))
            joined[label] = []
            yield ["spawn", node, label]
        elif roll < 0.45:
            label, _ = rng.choice(alive)
            group = rng.choice(GROUPS)
            twice = rng.random() < 0.3
            joined[label] += [group] * (2 if twice else 1)
            yield ["join2" if twice else "join", label, group]
        elif roll < 0.65:
            label, _ = rng.choice(alive)
            group = rng.choice(GROUPS)
            if group in joined[label]:
                joined[label].remove(group)
            yield ["leave", label, group, f"r{index}_{n}"]
        elif roll < 0.75:
            label, _ = alive.pop(rng.randrange(len(alive)))
            yield ["exit", label]
        elif roll < 0.85:
            if isolated is None:
                isolated = rng.choice(NODES)
                yield ["isolate", isolated]
            else:
                isolated = None
                yield ["heal"]
            yield ["sync"]
        else:
            yield ["sync"]
            yield ["dump", f"d{index}_{n}"]
    if isolated is not None:
        yield ["heal"]
    yield ["sync"]
    yield ["dump", f"d{index}_end"]


def scenarios(seed: int, count: int) -> list[Step]:
    rng = random.Random(seed)
    steps: list[Step] = [["nodes", *NODES]]
    for index in range(count):
        steps.extend(scenario(index, rng))
    return steps


Views = dict[tuple[str, str], dict[str, list[str]]]


def parse(lines: list[str]) -> tuple[Views, dict[str, str]]:
    views: Views = {}
    results: dict[str, str] = {}
    for line in lines:
        parts = line.split(" ")
        if parts[0] == "VIEW":
            tag, node, group = parts[1:4]
            labels = parts[4].split(",") if len(parts) > 4 and parts[4] else []
            views.setdefault((tag, node), {})[group] = sorted(labels)
        elif parts[0] == "RESULT":
            results[parts[1]] = parts[2]
    return views, results


@pytest.fixture
def epmd_port() -> Iterator[int]:
    """An epmd of this test's own on a free loopback port (no epmd runs on a fresh machine, and
    OTP's distribution needs one); ended by its pid."""
    assert EPMD is not None, "erlang-base ships epmd"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([EPMD, "-port", str(port), "-address", "127.0.0.1"])
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(
            [EPMD, "-port", str(port), "-names"], capture_output=True, check=False
        ).returncode:
            assert proc.poll() is None, "epmd exited"
            assert time.monotonic() < deadline, "epmd never answered"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_otp(steps: list[Step], tmp_path: Path, epmd_port: int) -> tuple[Views, dict[str, str]]:
    path = tmp_path / "scenario.txt"
    path.write_text("\n".join(" ".join(s) for s in steps) + "\n")
    assert ESCRIPT is not None
    out = subprocess.run(
        [ESCRIPT, str(SCRIPT), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ERL_EPMD_PORT": str(epmd_port)},
    )
    assert out.returncode == 0, out.stderr[-2000:] + out.stdout[-2000:]
    return parse(out.stdout.splitlines())


async def run_ember(steps: list[Step]) -> tuple[Views, dict[str, str]]:
    views: Views = {}
    results: dict[str, str] = {}
    pids: dict[str, ember.Pid] = {}
    scope = "default"
    async with SimCluster(list(NODES), seed=5) as sim:

        def peers(node: str) -> set[str]:
            return {p[0] for p in sim.node(node).pg._scopes[scope].core.remote}

        for step in steps[1:]:
            kind = step[0]
            if kind == "scope":
                scope = step[1]
                for node in NODES:
                    sim.node(node).pg.start_scope(scope)
                await asyncio.sleep(1.0)
            elif kind == "spawn":
                pids[step[2]] = await sim.node(step[1]).spawn(Sleeper)
            elif kind in ("join", "join2"):
                pid = pids[step[1]]
                sim.node(pid.node).pg.join(step[2], [pid] * (2 if kind == "join2" else 1), scope)
            elif kind == "leave":
                pid = pids[step[1]]
                results[step[3]] = sim.node(pid.node).pg.leave(step[2], pid, scope)
            elif kind == "exit":
                pid = pids[step[1]]
                await kill(sim.node(pid.node), pid)
            elif kind == "isolate":
                lone = step[1]
                sim.partition({lone})
                await sim.wait_for(
                    lambda lone=lone: (
                        not peers(lone) and all(lone not in peers(n) for n in NODES if n != lone)
                    ),
                    timeout=120,
                    what=f"{lone} isolated",
                )
            elif kind == "heal":
                sim.heal()
                await sim.wait_for(
                    lambda: all(peers(n) == set(NODES) - {n} for n in NODES),
                    timeout=120,
                    what="healed",
                )
            elif kind == "sync":
                await asyncio.sleep(1.0)
            elif kind == "dump":
                for node in NODES:
                    pg = sim.node(node).pg
                    labels = {pid: label for label, pid in pids.items()}
                    view = {
                        group: sorted(labels[p] for p in pg.get_members(group, scope))
                        for group in pg.which_groups(scope)
                    }
                    if view:
                        views[step[1], node] = view
    return views, results


def check(seed: int, count: int, tmp_path: Path, epmd_port: int) -> None:
    steps = scenarios(seed, count)
    otp_views, otp_results = run_otp(steps, tmp_path, epmd_port)
    ember_views, ember_results = ember.testing.run(run_ember(steps))
    assert ember_results == otp_results
    for key in sorted(set(otp_views) | set(ember_views)):
        assert ember_views.get(key) == otp_views.get(key), f"checkpoint {key}"
    assert len(otp_views) > count  # the checkpoints did see groups
    assert {"ok", "not_joined"} <= set(otp_results.values())


def test_ember_pg_sees_what_otp_pg_sees(tmp_path: Path, epmd_port: int) -> None:
    check(101, 4, tmp_path, epmd_port)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [102, 103, 104])
def test_ember_pg_sees_what_otp_pg_sees_in_more_scenarios(
    seed: int, tmp_path: Path, epmd_port: int
) -> None:
    check(seed, 12, tmp_path, epmd_port)


def test_the_scenarios_cover_every_kind_of_step() -> None:
    kinds: set[Any] = {step[0] for step in scenarios(101, 4)}
    assert kinds >= {"spawn", "join", "join2", "leave", "exit", "isolate", "heal", "dump"}
