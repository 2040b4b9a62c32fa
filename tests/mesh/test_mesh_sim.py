"""Whole clusters of SWIM cores in the deterministic simulator: convergence, failure detection
within the bound derived in docs/mesh.md, no false failures under loss, partitions, restarts.

Every test is seeded; a failure names its seed, and ``EMBER_SEED=<n>`` replays it.
"""

from __future__ import annotations

import statistics

import pytest

from ember.mesh import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberStatus,
    MemberSuspect,
    MemberUpdated,
    Simulation,
    SwimConfig,
)
from ember.testing import seeded, seeds

ALIVE, FAILED, LEFT = MemberStatus.ALIVE, MemberStatus.FAILED, MemberStatus.LEFT


def started(n: int, seed: int, config: SwimConfig | None = None, **net: object) -> Simulation:
    """A converged cluster of ``n`` members ``m0..`` that all joined through ``m0``."""
    sim = Simulation(config or SwimConfig.lan(), seed=seed, **net)  # type: ignore[arg-type]
    sim.add_cluster(n)
    took = sim.run_until_true(sim.converged, timeout=120)
    assert took is not None, f"seed {seed}: {n} members did not converge"
    return sim


def seen_by_all(sim: Simulation, kind: type[MemberEvent], about: str, since: float) -> list[float]:
    """For each running member, when it first saw ``kind`` about ``about`` since ``since``."""
    times = [sim.first(o, kind, about, since) for o in sim.running() if o != about]
    assert all(t is not None for t in times), f"seed {sim.seed}: not everyone saw {kind.__name__}"
    return [t for t in times if t is not None]


def false_failures(sim: Simulation) -> list[str]:
    return [
        f"{e.at:.1f}: {e.observer} failed {e.event.member.name}"
        for e in sim.events
        if isinstance(e.event, MemberFailed)
    ]


@pytest.mark.parametrize("seed", seeds(1, 2))
def test_fifty_members_converge_after_starting_from_one_seed(seed: int) -> None:
    with seeded(seed):
        sim = Simulation(SwimConfig.lan(), seed=seed)
        sim.add_cluster(50)
        took = sim.run_until_true(sim.converged, timeout=60, step=0.05)
        print(f"seed {seed}: 50 members converged in {took} s")
        # Typically under a second: each joiner's push-pull with the seed, then gossip. A joiner
        # answered before others reached the seed, and missed by their gossip, learns of them at
        # the next push-pull (periodic, with a random member): within one interval.
        assert took is not None and took <= sim.config.push_pull_interval
        assert not false_failures(sim)


@pytest.mark.parametrize(("n", "seed"), [(10, s) for s in seeds(1, 2, 3, 4)] + [(50, 5)])
def test_a_crash_is_declared_failed_by_all_within_the_derived_bound(n: int, seed: int) -> None:
    with seeded(seed):
        config = SwimConfig.lan()
        sim = started(n, seed, config)
        sim.run(10 + seed)
        victim = f"m{1 + seed % (n - 1)}"
        sim.crash(victim)
        crashed = sim.now
        bound = config.detection_bound(n, max_delay=sim.delay[1])
        sim.run(bound + 1)
        times = [t - crashed for t in seen_by_all(sim, MemberFailed, victim, crashed)]
        print(f"seed {seed}, n={n}: failed by all after {max(times):.2f} s (bound {bound:.1f} s)")
        assert max(times) <= bound
        assert not [f for f in false_failures(sim) if victim not in f]


def test_detection_times_match_the_expected_value() -> None:
    # SWIM: first detection after e/(e-1) periods on average; then the suspicion timeout,
    # driven to its minimum by Lifeguard's confirmations (docs/mesh.md)
    config = SwimConfig.lan()
    for n, runs in ((10, 12), (50, 4)):
        last = []
        base = seeds(100)[0]
        for seed in range(base, base + runs):
            with seeded(seed):
                sim = started(n, seed, config)
                sim.run(5 + seed % 7)
                victim = f"m{1 + seed % (n - 1)}"
                sim.crash(victim)
                crashed = sim.now
                sim.run(config.detection_bound(n))
                last.append(max(seen_by_all(sim, MemberFailed, victim, crashed)) - crashed)
        expected = config.expected_detection_time(n)
        median = statistics.median(last)
        print(f"n={n}: failed by all, median {median:.2f} s, expected {expected:.2f} s")
        assert 0.75 * expected <= median <= 1.25 * expected


@pytest.mark.parametrize("seed", seeds(7))
def test_no_live_member_is_declared_failed_with_5pct_loss_over_an_hour(seed: int) -> None:
    with seeded(seed):
        sim = started(20, seed, loss=0.05, delay=(0.0005, 0.005))
        sim.run(3600)
        assert false_failures(sim) == []
        assert sim.converged()
        suspicions = sum(isinstance(e.event, MemberSuspect) for e in sim.events)
        refutations = sum(m.swim.statistics().refutations for m in sim.members.values())
        print(f"seed {seed}: {suspicions} suspect events, {refutations} refutations, no failure")


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds(11, 12, 13))
def test_no_false_failure_at_5pct_loss_fifty_members_an_hour(seed: int) -> None:
    with seeded(seed):
        sim = started(50, seed, loss=0.05, delay=(0.0005, 0.005))
        sim.run(3600)
        assert false_failures(sim) == []
        assert sim.converged()


@pytest.mark.parametrize("seed", seeds(21, 22))
def test_a_short_partition_heals_into_one_view(seed: int) -> None:
    with seeded(seed):
        sim = started(12, seed)
        names = list(sim.members)
        sim.partition(names[:4], names[4:8])  # three groups: the rest is the third
        sim.run(3.0)  # suspicions, but shorter than the suspicion timeout
        assert not sim.converged()
        sim.heal()
        took = sim.run_until_true(sim.converged, timeout=60)
        print(f"seed {seed}: one view {took} s after the heal; {len(false_failures(sim))} failures")
        # suspects refute once the buddy system or gossip reaches them; a suspicion that
        # expired first is undone by the member's refutation, seen by all
        assert took is not None


@pytest.mark.parametrize(
    ("seed", "cut"), [(s, cut) for s in seeds(31, 32) for cut in ("halves", "one")]
)
def test_a_full_partition_longer_than_the_suspicion_timeout_re_forms(seed: int, cut: str) -> None:
    # memberlist's users' bug: both sides declare the other failed, stop probing and gossiping
    # to it, and never meet again. Reconnect attempts to failed members re-form the cluster.
    with seeded(seed):
        config = SwimConfig.lan()
        sim = started(16, seed, config)
        names = list(sim.members)
        side = names[:8] if cut == "halves" else names[5:6]
        sim.partition(side)

        def split() -> bool:
            for o in names:
                others = set(names) - set(side) if o in side else set(side)
                if any(sim.view(o)[m].status is not FAILED for m in others):
                    return False
            return True

        # a member cut off alone takes longer: its probes fail without nacks, so its local
        # health stretches its probe interval up to 8 s
        assert sim.run_until_true(split, timeout=300, step=1.0) is not None
        healed = sim.now
        sim.heal()
        took = sim.run_until_true(sim.converged, timeout=120)
        print(f"seed {seed} ({cut}): re-formed {took} s after the heal")
        assert took is not None and took <= 2 * config.reconnect_interval
        for o in names:
            assert sim.first(o, MemberJoined, side[0] if o not in side else names[-1], healed)


@pytest.mark.parametrize(("seed", "down"), [(s, d) for s in seeds(41) for d in (0.3, 60.0)])
def test_a_restarted_member_rejoins_with_a_higher_incarnation(seed: int, down: float) -> None:
    # down 0.3 s: back before anyone noticed; 60 s: back after everyone declared it failed
    with seeded(seed):
        sim = started(10, seed)
        sim.members["m4"].swim.update_meta({"v": 1})
        sim.run(5)
        old = sim.members["m4"].swim.incarnation
        assert {sim.view(o)["m4"].incarnation for o in sim.running()} == {old}
        sim.crash("m4")
        sim.run(down)
        was_failed = all(sim.view(o)["m4"].status is FAILED for o in sim.running())
        assert was_failed == (down > 30)
        restarted = sim.now
        swim = sim.restart("m4", meta={"v": 2})
        took = sim.run_until_true(
            lambda: (
                sim.converged()
                and {sim.view(o)["m4"].incarnation for o in sim.running()} == {swim.incarnation}
            ),
            timeout=30,
        )
        assert took is not None
        assert swim.incarnation > old
        assert all(sim.view(o)["m4"].meta == {"v": 2} for o in sim.running())
        if was_failed:
            seen_by_all(sim, MemberJoined, "m4", restarted)
        else:
            seen_by_all(sim, MemberUpdated, "m4", restarted)


@pytest.mark.parametrize("seed", seeds(51))
def test_a_graceful_leave_is_seen_as_left_by_all(seed: int) -> None:
    with seeded(seed):
        sim = started(10, seed)
        t = sim.now
        sim.leave("m3")
        sim.run(5)
        assert not sim.members["m3"].running  # stopped once the leave was gossiped
        seen_by_all(sim, MemberLeft, "m3", t)
        assert not false_failures(sim)
        assert all(sim.view(o)["m3"].status is LEFT for o in sim.running())
        sim.run(sim.config.left_reap_time + 2)
        assert all("m3" not in sim.view(o) for o in sim.running())


@pytest.mark.parametrize("seed", seeds(61))
def test_metadata_updates_reach_everyone(seed: int) -> None:
    with seeded(seed):
        sim = started(20, seed)
        sim.members["m7"].swim.update_meta({"raft": True, "admin": "m7:8080"})
        t = sim.now
        sim.run(3)
        times = seen_by_all(sim, MemberUpdated, "m7", t)
        assert max(times) - t < 2.0
        assert all(
            sim.view(o)["m7"].meta == {"raft": True, "admin": "m7:8080"} for o in sim.running()
        )


@pytest.mark.parametrize("seed", seeds(71))
def test_the_wire_encoding_carries_a_lossy_run(seed: int) -> None:
    # every packet encoded and decoded, and its announced size checked against the bytes
    with seeded(seed):
        sim = Simulation(SwimConfig.lan(), seed=seed, loss=0.05, wire=True)
        sim.add_cluster(12)
        assert sim.run_until_true(sim.converged, timeout=60) is not None
        sim.crash("m5")
        sim.run(30)
        assert all(sim.view(o)["m5"].status is FAILED for o in sim.running())


def test_one_seed_is_one_run() -> None:
    def trace(seed: int) -> list[tuple[float, str, str, str]]:
        sim = Simulation(SwimConfig.lan(), seed=seed, loss=0.1, delay=(0.001, 0.02))
        sim.add_cluster(8)
        sim.run(10)
        sim.crash("m2")
        sim.run(30)
        return [(e.at, e.observer, type(e.event).__name__, e.event.member.name) for e in sim.events]

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)


@pytest.mark.parametrize("seed", seeds(81))
def test_a_slow_member_does_not_accuse_healthy_ones(seed: int) -> None:
    # Lifeguard's point: a member that hears acks late (CPU starved) misses them and accuses
    # healthy peers. Local health stretches its timeouts instead: compare with it disabled.
    def accusations(awareness: int) -> tuple[int, int]:
        sim = started(10, seed, SwimConfig.lan(awareness_max_multiplier=awareness))
        t = sim.now
        sim.slow("m1", 1.5)  # everything m1 receives is 1.5 s late: more than a probe interval
        sim.run(600)
        others = sum(
            isinstance(e.event, MemberSuspect) and e.event.member.name != "m1" and e.at >= t
            for e in sim.events
        )
        # m1 itself may be declared failed now and then (it does answer too late) and rejoin
        return others, len([f for f in false_failures(sim) if not f.endswith(" m1")])

    with seeded(seed):
        with_lhm, failures = accusations(8)
        without, _ = accusations(1)
        print(f"seed {seed}: suspicions of healthy members {with_lhm} with LHM, {without} without")
        assert failures == 0
        assert with_lhm * 50 < without


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds(91))
def test_two_hundred_members_converge_and_detect_a_crash(seed: int) -> None:
    with seeded(seed):
        config = SwimConfig.lan()
        sim = Simulation(config, seed=seed)
        sim.add_cluster(200)
        took = sim.run_until_true(sim.converged, timeout=60, step=0.1)
        assert took is not None
        sim.crash("m77")
        crashed = sim.now
        sim.run(config.detection_bound(200))
        times = seen_by_all(sim, MemberFailed, "m77", crashed)
        detected = max(times) - crashed
        print(f"200 members: converged in {took:.1f} s, crash seen by all in {detected:.1f} s")


@pytest.mark.parametrize("seed", seeds(51, 52))
def test_a_transport_connection_to_a_failed_member_re_forms_the_view_at_once(seed: int) -> None:
    # After a heal the nodes' TCP connections come up long before a reconnect attempt (every
    # reconnect_interval, and from the majority's side rarely) would find the member the
    # views hold failed; a connection opening to such a member starts a push-pull at once.
    with seeded(seed):
        config = SwimConfig.lan()
        sim = started(12, seed, config)
        names = list(sim.members)
        alone, other = names[5], names[0]
        sim.partition([alone])
        split = sim.run_until_true(
            lambda: (
                sim.view(other)[alone].status is FAILED and sim.view(alone)[other].status is FAILED
            ),
            timeout=300,
            step=1.0,
        )
        assert split is not None
        sim.heal()
        before = sim.members[other].swim.statistics().connect_syncs
        sim.connect(alone, other)  # a frame between them opened a connection
        took = sim.run_until_true(sim.converged, timeout=120, step=0.1)
        print(f"seed {seed}: one view {took} s after the connection opened")
        assert took is not None and took <= 2 * config.probe_interval
        assert sim.members[other].swim.statistics().connect_syncs == before + 1
