"""Membership in the deterministic simulator: failure detection, false positives, join
convergence and traffic of the SWIM core (``ember.mesh.Simulation``, virtual time, LAN profile).

Everything here is virtual time: figures are seconds (or bytes) of the simulated cluster, not of
this machine, so they do not depend on its load. Each trial is one seeded simulation; the seeds
are fixed, so a run replays exactly. Network: no loss unless said, one-way delays uniform in
0.5..2 ms (0.5..5 ms in the false-positive runs, as in the tests).

- **detection** (per size n, ``trials`` runs): n members start through one seed and converge;
  after a random 5..15 s a random member (not the seed) crashes. Measured from the crash: the
  first suspicion of it (any member), the first member declaring it failed, and the last live
  member doing so. Compared with SWIM's e/(e-1) = 1.58 protocol periods to first detection, with
  memberlist's suspicion timeout (4·max(1, log10 n)·T, computed here from the anchor, not taken
  from the code under test), with ``SwimConfig.expected_detection_time(n)`` and with
  ``SwimConfig.detection_bound(n)``.
- **false positives** (per size and loss 0 % / 5 % on UDP and TCP): a converged cluster runs for
  ``fp_period`` simulated seconds; every member stays alive, so every ``MemberFailed`` is false.
  Also counted: distinct suspicions (member, incarnation), suspect events (one per observer) and
  refutations.
- **join**: (a) one member joins a converged cluster of n - 1 through one seed: time until every
  member has it alive, and until it has everyone; (b) cold start: all n members start at once
  through one seed, time until every view is exactly the n members alive (checked every 50 ms).
- **broadcast**: a member of a converged cluster updates its metadata; time until every other
  member has seen the update, from the call (the simulator sends it at the member's next
  scheduled tick, up to a gossip interval later) and from the first receipt. Serf's anchor:
  99.9 % of 100 nodes in 1.5 s with 0.2 s gossip rounds and fanout 3, the LAN profile's values.
- **traffic**: a converged cluster settles for one push-pull period, then the bytes every member
  sends are counted over two push-pull periods, UDP (probes, acks, gossip) and TCP (push-pull,
  fallback probes) apart. Sizes are the core's encoded packets; the shell adds its
  ``packet_overhead`` (64 B reserved for authentication) and IP/UDP headers (28 B) per datagram,
  shown as ``udp_wire_estimate``.
- **lifeguard**: 10 members, one of which reads its packets 1.5 s late (CPU-starved) for 600 s:
  suspect events (one per observer) about the healthy members, with local health on and off
  (Lifeguard reports a more than 50x cut in false positives).

``python -m bench.mesh [--quick]`` prints the section alone; ``python -m bench --only mesh``
runs it within the harness.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ember.mesh import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberSuspect,
    MemberUpdated,
    SimEvent,
    Simulation,
    SwimConfig,
)

from ._util import goal

NAME = "mesh"
SEED = 4000
DELAY = (0.0005, 0.002)
FP_DELAY = (0.0005, 0.005)
UDP_IP_HEADER = 28

# Anchors (../shared/ANCHORS.md)
SWIM_FIRST_DETECTION_PERIODS = math.e / (math.e - 1)  # 1.58
MEMBERLIST_SUSPICION_MULT = 4  # min = 4 * max(1, log10 n) * probe interval
MEMBERLIST_SUSPICION_MAX_MULT = 6
SERF_CONVERGENCE_S = 1.5  # 99.9 % of 100 nodes, 0.2 s gossip, fanout 3
SERF_NODES = 100
LIFEGUARD_FP_CUT = 50.0


@dataclass(frozen=True)
class Plan:
    """How much to measure: sizes and, per size, trials and simulated periods."""

    sizes: tuple[int, ...]
    detection_trials: dict[int, int]
    fp_period: dict[int, float]
    join_trials: dict[int, int]
    broadcast_trials: dict[int, int]
    losses: tuple[float, ...] = (0.0, 0.05)
    lifeguard_period: float = 600.0
    config: SwimConfig = field(default_factory=SwimConfig.lan)

    @classmethod
    def full(cls) -> Plan:
        return cls(
            sizes=(10, 50, 200),
            detection_trials={10: 30, 50: 30, 200: 12},
            fp_period={10: 3600.0, 50: 3600.0, 200: 900.0},
            join_trials={10: 20, 50: 10, 200: 4},
            broadcast_trials={10: 20, 50: 20, 200: 6},
        )

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            sizes=(10, 50, 200),
            detection_trials={10: 10, 50: 6, 200: 2},
            fp_period={10: 600.0, 50: 300.0, 200: 60.0},
            join_trials={10: 4, 50: 3, 200: 1},
            broadcast_trials={10: 4, 50: 3, 200: 1},
            lifeguard_period=300.0,
        )

    @classmethod
    def tiny(cls) -> Plan:
        """A few seconds of wall time: for the smoke test."""
        return cls(
            sizes=(5, 12),
            detection_trials={5: 3, 12: 3},
            fp_period={5: 120.0, 12: 120.0},
            join_trials={5: 2, 12: 2},
            broadcast_trials={5: 2, 12: 2},
            lifeguard_period=120.0,
        )

    def params(self) -> dict[str, Any]:
        return {
            "profile": "lan",
            "probe_interval_s": self.config.probe_interval,
            "gossip_interval_s": self.config.gossip_interval,
            "gossip_fanout": self.config.gossip_fanout,
            "sizes": list(self.sizes),
            "detection_trials": _by_n(self.detection_trials),
            "false_positive_period_s": _by_n(self.fp_period),
            "losses": list(self.losses),
            "join_trials": _by_n(self.join_trials),
            "broadcast_trials": _by_n(self.broadcast_trials),
            "lifeguard_period_s": self.lifeguard_period,
            "delay_s": list(DELAY),
            "false_positive_delay_s": list(FP_DELAY),
            "seed": SEED,
            "time": "virtual (simulated seconds), not wall time",
            "percentile": "nearest rank (p99 of 30 trials is the largest)",
        }


# -- the simulation, observed -------------------------------------------------------------------


class _Watch:
    """Records, as they happen, the first time each observer saw a kind of event about a member."""

    def __init__(self, sim: Simulation, kind: type[MemberEvent], about: str) -> None:
        self.kind = kind
        self.about = about
        self.first: dict[str, float] = {}
        self.others: list[SimEvent] = []
        sim.on_event = self.on

    def on(self, e: SimEvent) -> None:
        if not isinstance(e.event, self.kind):
            return
        if e.event.member.name == self.about:
            self.first.setdefault(e.observer, e.at)
        else:
            self.others.append(e)


def _started(plan: Plan, n: int, seed: int, **net: Any) -> Simulation:
    """A converged cluster of ``n`` members ``m0..`` that all joined through ``m0``."""
    sim = Simulation(plan.config, seed=seed, **({"delay": DELAY} | net))
    sim.add_cluster(n)
    if sim.run_until_true(sim.converged, timeout=300, step=0.1) is None:
        raise RuntimeError(f"seed {seed}: {n} members did not converge in 300 s")
    return sim


def _seed(kind: int, n: int, trial: int) -> int:
    return SEED + kind * 1_000_000 + n * 1000 + trial


# -- detection ----------------------------------------------------------------------------------


def detection_trial(plan: Plan, n: int, trial: int) -> dict[str, float | None]:
    """One crash in a converged cluster: seconds from the crash to the first suspicion, the first
    and the last failure declared (None if not within the detection bound)."""
    seed = _seed(1, n, trial)
    sim = _started(plan, n, seed)
    rng = random.Random(seed)
    sim.run(rng.uniform(5.0, 15.0))
    victim = f"m{rng.randrange(1, n)}"
    failed = _Watch(sim, MemberFailed, victim)
    suspected: list[float] = []

    def on(e: SimEvent) -> None:
        failed.on(e)
        if isinstance(e.event, MemberSuspect) and e.event.member.name == victim:
            suspected.append(e.at)

    sim.on_event = on
    sim.crash(victim)
    crashed = sim.now
    live = set(sim.running())
    bound = plan.config.detection_bound(n, max_delay=DELAY[1])
    sim.run_until_true(lambda: live <= failed.first.keys(), timeout=bound + 1.0, step=0.05)
    times = [t - crashed for t in failed.first.values()]
    return {
        "first_suspect": min(suspected) - crashed if suspected else None,
        "first_failed": min(times) if times else None,
        "all_failed": max(times) if live <= failed.first.keys() else None,
        "false_failures": float(len(failed.others)),
    }


# -- false positives ----------------------------------------------------------------------------


def false_positive_run(plan: Plan, n: int, loss: float) -> dict[str, float]:
    """A converged cluster with ``loss`` on every packet, run for the plan's period."""
    seed = _seed(2, n, round(loss * 1000))
    sim = _started(plan, n, seed, loss=loss, delay=FP_DELAY)
    before = len(sim.events)
    refutations0 = sum(m.swim.statistics().refutations for m in sim.members.values())
    period = plan.fp_period[n]
    sim.run(period)
    events = sim.events[before:]
    refutations = sum(m.swim.statistics().refutations for m in sim.members.values())
    false = sum(isinstance(e.event, MemberFailed) for e in events)
    suspects = [e for e in events if isinstance(e.event, MemberSuspect)]
    return {
        "false_failures": float(false),
        "suspicions": float(
            len({(e.event.member.name, e.event.member.incarnation) for e in suspects})
        ),
        "suspect_events": float(len(suspects)),
        "refutations": float(refutations - refutations0),
        "false_failures_per_member_hour": false / (n * period / 3600.0),
        "converged_at_end": float(sim.converged()),
    }


# -- join and broadcast -------------------------------------------------------------------------


def join_trial(plan: Plan, n: int, trial: int) -> dict[str, float | None]:
    """A member joins a converged cluster of n - 1 through ``m0``: seconds until everyone has it
    alive, and until it has everyone."""
    seed = _seed(3, n, trial)
    sim = _started(plan, n - 1, seed)
    sim.run(random.Random(seed).uniform(2.0, 5.0))
    watch = _Watch(sim, MemberJoined, "joiner")
    start = sim.now
    sim.add("joiner", seeds=["m0"])
    others = set(sim.running()) - {"joiner"}

    def done() -> bool:
        return others <= watch.first.keys() and len(sim.members["joiner"].swim.members()) >= n

    sim.run_until_true(done, timeout=120.0, step=0.05)
    learned = [e.at for e in sim.events if e.observer == "joiner" and e.at >= start]
    return {
        "seen_by_all": max(watch.first.values()) - start if others <= watch.first.keys() else None,
        "joiner_knows_all": max(learned) - start if len(learned) >= n - 1 else None,
    }


def cold_start_trial(plan: Plan, n: int, trial: int) -> float | None:
    """All n members start at once through ``m0``: seconds until every view is exact."""
    sim = Simulation(plan.config, seed=_seed(4, n, trial), delay=DELAY)
    sim.add_cluster(n)
    return sim.run_until_true(sim.converged, timeout=120.0, step=0.05)


def broadcast_trial(plan: Plan, n: int, trial: int) -> dict[str, float | None]:
    """A member updates its metadata: seconds until all others saw it, from the update and from
    the first receipt."""
    seed = _seed(5, n, trial)
    sim = _started(plan, n, seed)
    rng = random.Random(seed)
    sim.run(rng.uniform(5.0, 15.0))
    who = f"m{rng.randrange(n)}"
    watch = _Watch(sim, MemberUpdated, who)
    start = sim.now
    sim.members[who].swim.update_meta({"v": trial}, now=start)
    others = set(sim.running()) - {who}
    sim.run_until_true(lambda: others <= watch.first.keys(), timeout=60.0, step=0.05)
    if not others <= watch.first.keys():
        return {"seen_by_all": None, "spread": None}
    times = watch.first.values()
    return {"seen_by_all": max(times) - start, "spread": max(times) - min(times)}


# -- traffic ------------------------------------------------------------------------------------


def traffic_run(plan: Plan, n: int) -> dict[str, float]:
    """Bytes and packets per member per second in steady state, by transport."""
    sim = _started(plan, n, _seed(6, n, 0))
    period = plan.config.push_pull_period(n)
    sim.run(period)
    st = sim.stats
    b0 = {"udp": st.udp_bytes, "tcp": st.tcp_bytes}
    p0 = {"udp": st.udp_packets, "tcp": st.tcp_packets}
    window = 2 * period
    sim.run(window)
    per = n * window
    udp_b = (st.udp_bytes - b0["udp"]) / per
    tcp_b = (st.tcp_bytes - b0["tcp"]) / per
    udp_p = (st.udp_packets - p0["udp"]) / per
    tcp_p = (st.tcp_packets - p0["tcp"]) / per
    overhead = plan.config.packet_overhead + UDP_IP_HEADER
    return {
        "udp_bytes": udp_b,
        "tcp_bytes": tcp_b,
        "udp_packets": udp_p,
        "tcp_packets": tcp_p,
        "udp_wire_estimate": udp_b + udp_p * overhead,
        "window_s": window,
    }


# -- lifeguard ----------------------------------------------------------------------------------


def lifeguard_run(plan: Plan, awareness: int) -> int:
    """Suspicions of healthy members in 10 members, one of them slow, over the plan's period."""
    config = plan.config.replace(awareness_max_multiplier=awareness)
    sim = _started(dataclasses.replace(plan, config=config), 10, _seed(7, 10, 0))
    start = sim.now
    sim.slow("m1", 1.5)
    sim.run(plan.lifeguard_period)
    return sum(
        isinstance(e.event, MemberSuspect) and e.event.member.name != "m1" and e.at >= start
        for e in sim.events
    )


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sequence."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def _by_n(d: dict[int, Any]) -> dict[str, Any]:
    return {f"n{n}": v for n, v in d.items()}


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def memberlist_suspicion_min(n: int, probe_interval: float) -> float:
    """memberlist's minimum suspicion timeout: 4 * max(1, log10 n) * probe interval."""
    return MEMBERLIST_SUSPICION_MULT * max(1.0, math.log10(n)) * probe_interval


# -- the benchmark ------------------------------------------------------------------------------


@contextlib.contextmanager
def _progress(label: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    print(f"bench.mesh: {label} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


@dataclass
class _Section:
    """What the parts of the benchmark fill in."""

    results: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    goals: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    undetected: dict[str, int] = field(default_factory=dict)

    def series(self, key: str, values: list[float], *, mean: bool = False) -> None:
        """Samples of ``key`` with their median and p99 (and mean), or max for short series."""
        self.samples[key] = [round(v, 4) for v in values]
        if not values:
            return
        base, _, k = key.rpartition("_")
        self.results[f"{base}_median_s_{k}"] = statistics.median(values)
        if mean:
            self.results[f"{base}_p99_s_{k}"] = percentile(values, 0.99)
            self.results[f"{base}_mean_s_{k}"] = statistics.fmean(values)
        else:
            self.results[f"{base}_max_s_{k}"] = max(values)


def _detection(plan: Plan, n: int, out: _Section) -> None:
    config, k = plan.config, f"n{n}"
    period = config.probe_interval
    with _progress(f"detection n={n}"):
        trials = [detection_trial(plan, n, t) for t in range(plan.detection_trials[n])]
    for key in ("first_suspect", "first_failed", "all_failed"):
        out.series(f"{key}_{k}", _present(t[key] for t in trials), mean=True)
    r = out.results
    all_failed = _present(t["all_failed"] for t in trials)
    out.undetected[k] = len(trials) - len(all_failed)
    if all_failed:
        r[f"all_failed_max_s_{k}"] = max(all_failed)
    r[f"false_failures_during_detection_{k}"] = sum(t["false_failures"] or 0 for t in trials)
    lo, hi = config.suspicion_timeouts(n)
    ml_min = memberlist_suspicion_min(n, period)
    bound = config.detection_bound(n, max_delay=DELAY[1])
    exp = config.expected_detection_time(n)
    out.expected[k] = {
        "suspicion_min_max_s": [lo, hi],
        "memberlist_suspicion_min_max_s": [ml_min, ml_min * MEMBERLIST_SUSPICION_MAX_MULT],
        "expected_detection_s": round(exp, 3),
        "detection_bound_s": round(bound, 3),
    }
    suspicion_lengths = [
        f - s
        for f, s in ((t["first_failed"], t["first_suspect"]) for t in trials)
        if f is not None and s is not None
    ]
    swim = SWIM_FIRST_DETECTION_PERIODS * period
    ratios = out.ratios
    ratios[f"first_suspect_mean/swim_1.58T_{k}"] = ratio(r.get(f"first_suspect_mean_s_{k}"), swim)
    ratios[f"first_suspect_median/swim_1.58T_{k}"] = ratio(
        r.get(f"first_suspect_median_s_{k}"), swim
    )
    ratios[f"suspicion_to_first_failure_median/memberlist_min_{k}"] = ratio(
        statistics.median(suspicion_lengths) if suspicion_lengths else None, ml_min
    )
    ratios[f"all_failed_median/expected_{k}"] = ratio(r.get(f"all_failed_median_s_{k}"), exp)
    ratios[f"all_failed_mean/expected_{k}"] = ratio(r.get(f"all_failed_mean_s_{k}"), exp)
    ratios[f"all_failed_p99/bound_{k}"] = ratio(r.get(f"all_failed_p99_s_{k}"), bound)
    ratios[f"all_failed_max/bound_{k}"] = ratio(r.get(f"all_failed_max_s_{k}"), bound)
    out.goals[f"detection_within_bound_{k}"] = goal(
        f"every crash declared failed by all within the derived bound ({bound:.0f} s) "
        f"at n={n} (value: worst/bound)",
        ratios[f"all_failed_max/bound_{k}"] if not out.undetected[k] else None,
        1.0,
        False,
    )
    out.goals[f"detection_median_near_expected_{k}"] = goal(
        f"median failed-by-all <= 1.25x the expected {exp:.1f} s at n={n}",
        ratios[f"all_failed_median/expected_{k}"],
        1.25,
        False,
    )


def _false_positives(plan: Plan, n: int, out: _Section) -> None:
    k = f"n{n}"
    for loss in plan.losses:
        pct = f"{round(loss * 100)}pct"
        with _progress(f"false positives n={n} loss={loss}"):
            fp = false_positive_run(plan, n, loss)
        for key, value in fp.items():
            out.results[f"fp_{key}_{pct}_{k}"] = value
        out.goals[f"no_false_failure_{pct}_{k}"] = goal(
            f"no live member declared failed at n={n}, {pct} loss, "
            f"{plan.fp_period[n]:.0f} s simulated",
            fp["false_failures"],
            0,
            False,
        )


def _joins(plan: Plan, n: int, out: _Section) -> None:
    k = f"n{n}"
    with _progress(f"join, cold start, broadcast n={n}"):
        joins = [join_trial(plan, n, t) for t in range(plan.join_trials[n])]
        colds = [cold_start_trial(plan, n, t) for t in range(plan.join_trials[n])]
        casts = [broadcast_trial(plan, n, t) for t in range(plan.broadcast_trials[n])]
    out.series(f"join_seen_by_all_{k}", _present(j["seen_by_all"] for j in joins))
    out.series(f"join_joiner_knows_all_{k}", _present(j["joiner_knows_all"] for j in joins))
    out.series(f"cold_start_converged_{k}", _present(colds))
    out.series(f"broadcast_seen_by_all_{k}", _present(b["seen_by_all"] for b in casts))
    out.series(f"broadcast_spread_{k}", _present(b["spread"] for b in casts))
    out.results[f"join_failures_{k}"] = float(
        sum(j["seen_by_all"] is None for j in joins) + sum(c is None for c in colds)
    )
    for key in ("join_seen_by_all", "broadcast_seen_by_all", "broadcast_spread"):
        out.ratios[f"{key}_median/serf_1.5s_at_100_{k}"] = ratio(
            out.results.get(f"{key}_median_s_{k}"), SERF_CONVERGENCE_S
        )


def _traffic(plan: Plan, n: int, out: _Section) -> None:
    k = f"n{n}"
    with _progress(f"traffic n={n}"):
        traffic = traffic_run(plan, n)
    for key, value in traffic.items():
        name = f"traffic_{key}_{k}" if key == "window_s" else f"{key}_per_member_s_{k}"
        out.results[name] = value


def _lifeguard(plan: Plan, out: _Section) -> None:
    with _progress("lifeguard on and off"):
        with_lhm = lifeguard_run(plan, plan.config.awareness_max_multiplier)
        without = lifeguard_run(plan, 1)
    out.results["lifeguard_suspect_events_of_healthy_with_lhm"] = float(with_lhm)
    out.results["lifeguard_suspect_events_of_healthy_without_lhm"] = float(without)
    cut = ratio(without, max(with_lhm, 1))
    out.ratios["lifeguard_suspect_events_without_lhm/with_lhm"] = cut  # "with" floored at 1
    out.goals["lifeguard_cut"] = goal(
        "local health cuts suspicions of healthy members by a slow member >= 50x (Lifeguard)",
        cut,
        LIFEGUARD_FP_CUT,
        True,
    )


def run_plan(plan: Plan) -> dict[str, Any]:
    """Measure everything in ``plan``; the section printed by ``python -m bench``."""
    out = _Section()
    out.expected["swim_first_detection_s"] = (
        SWIM_FIRST_DETECTION_PERIODS * plan.config.probe_interval
    )
    for n in plan.sizes:
        _detection(plan, n, out)
        _false_positives(plan, n, out)
        _joins(plan, n, out)
        _traffic(plan, n, out)
    _lifeguard(plan, out)
    return {
        "unit": "seconds of virtual time (*_s_*), bytes and packets per member per second "
        "(*_per_member_s_*), counts",
        "params": plan.params(),
        "expected": out.expected,
        "results": {k: round(v, 4) for k, v in out.results.items()},
        "ratios": out.ratios,
        "samples_s": out.samples,
        "undetected_within_bound": out.undetected,
        "goals": out.goals,
        "anchors": {
            "swim_first_detection_periods": round(SWIM_FIRST_DETECTION_PERIODS, 3),
            "memberlist_suspicion": "min = 4*max(1, log10 n)*T, max = 6*min",
            "serf_convergence": "99.9% of 100 nodes in 1.5 s (0.2 s gossip, fanout 3)",
            "lifeguard": "false positives cut by more than 50x",
        },
    }


def run(quick: bool, reps: int) -> dict[str, Any]:
    """For ``python -m bench``: trials, not ``reps``, are the repetitions here."""
    del reps
    return run_plan(Plan.quick() if quick else Plan.full())


def goals(benchmarks: dict[str, Any]) -> dict[str, Any]:
    """The membership goals for ``python -m bench`` (empty if the benchmark did not run)."""
    sec = benchmarks.get(NAME)
    return {} if sec is None else {f"mesh_{k}": v for k, v in sec["goals"].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mesh", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer trials, shorter periods")
    parser.add_argument("--tiny", action="store_true", help="the smoke test's plan")
    args = parser.parse_args(argv)
    plan = Plan.tiny() if args.tiny else Plan.quick() if args.quick else Plan.full()
    print(json.dumps(run_plan(plan), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
