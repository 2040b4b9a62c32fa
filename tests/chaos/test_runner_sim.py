"""The runner on the sim driver: a whole scenario runs, is checked, and replays from its seed."""

import textwrap

import pytest

from ember.chaos._checkers import Validity
from ember.chaos._clock import run_skewed
from ember.chaos._driver import DriverError
from ember.chaos._procdriver import ProcessDriver
from ember.chaos._runner import Runner
from ember.chaos._scenario import parse_scenario
from ember.chaos._simdriver import SimDriver
from ember.chaos._workloads import KVWorkload

SCENARIO = textwrap.dedent(
    """\
    name = "kill-and-partition"
    settle = 3
    [cluster]
    nodes = 3
    [[workload]]
    kind = "kv"
    clients = 4
    rate = 40
    duration = 8
    keys = 3
    [[faults.timeline]]
    at = 1.5
    fault = "kill"
    target = "leader"
    duration = 2
    [[faults.timeline]]
    at = 4.5
    fault = "partition"
    target = "leader"
    duration = 2.5
    """
)


async def run(text, seed, tmp_path):
    scenario = parse_scenario(text)
    return await Runner(scenario, SimDriver(scenario, seed, tmp_path), seed).run()


async def test_a_scenario_runs_and_every_check_passes(tmp_path):
    result = await run(SCENARIO, 5, tmp_path)
    assert result.validity is Validity.VALID, [c.summary for c in result.checks]
    names = [c.name for c in result.checks]
    assert names == ["linearizable", "no_lost_writes", "availability", "bounded_rss", "clean_logs"]
    assert [f.fault for f in result.faults] == ["kill", "partition"]
    assert all(f.stop is not None and f.stop > f.start for f in result.faults)
    counts = result.history.counts()
    assert counts["ok"] > 200 and counts["open"] == 0
    finals = [e for e in result.history if e.f == "final_read" and e.type == "ok"]
    assert {e.key for e in finals} == {"k0", "k1", "k2"}
    assert result.phases["healed"] >= result.phases["workload_end"] >= 8.0


def test_one_seed_replays_the_same_history(tmp_path):
    # On the driver's own loop (as `ember chaos run` runs it): its Raft saves do not race.
    def replay(seed, where):
        return run_skewed(lambda: run(SCENARIO, seed, tmp_path / where))

    first = replay(8, "a")
    second = replay(8, "b")
    other = replay(9, "c")
    assert [e.as_dict() for e in first.history] == [e.as_dict() for e in second.history]
    assert [f.as_dict() for f in first.faults] == [f.as_dict() for f in second.faults]
    assert [e.as_dict() for e in other.history] != [e.as_dict() for e in first.history]


async def test_a_planted_consistency_bug_is_found(tmp_path, monkeypatch):
    """Reads served by any member's local state (a stale-read bug) under partitions of the
    leader: the linearizability checker must catch it."""
    original = KVWorkload._perform

    async def stale_reads(self, process, f, key, value):
        if f != "read":
            return await original(self, process, f, key, value)
        invoke = self.history.invoke(process, f, key, value, self.clock())
        member = self.rng.choice(self.driver.kv.members)
        try:
            result = await self.driver.kv.read(key, consistency="stale", member=member, timeout=1.0)
        except Exception as exc:
            self.history.complete(invoke, "fail", None, self.clock(), error=type(exc).__name__)
            return "fail", None
        self.history.complete(invoke, "ok", result, self.clock())
        return "ok", result

    monkeypatch.setattr(KVWorkload, "_perform", stale_reads)
    text = SCENARIO.replace("rate = 40", "rate = 80")
    result = await run(text, 3, tmp_path)
    lin = next(c for c in result.checks if c.name == "linearizable")
    assert lin.validity is Validity.INVALID, lin.summary
    assert ": read -> " in lin.witness["failing"]["op"]  # a read saw what it should not have
    assert result.validity is Validity.INVALID


def test_a_fault_the_driver_cannot_inject_is_refused_before_anything_starts(tmp_path):
    scenario = parse_scenario(SCENARIO.replace('fault = "kill"', 'fault = "clock-skew"'))

    class NoClock(ProcessDriver):  # a driver without that fault (netns has none of it)
        faults = ProcessDriver.faults - {"clock-skew"}

    driver = NoClock(scenario, 1, tmp_path)  # nothing starts until start()
    with pytest.raises(DriverError, match="the processes driver cannot inject clock-skew"):
        driver.check_supported()
    ProcessDriver(scenario, 1, tmp_path).check_supported()  # node processes skew clocks too
    SimDriver(scenario, 1, tmp_path).check_supported()  # the sim driver injects every fault


SUPERVISED = textwrap.dedent(
    """\
    settle = 1
    [cluster]
    nodes = 3
    durable = false
    [[workload]]
    kind = "supervisors"
    clients = 3
    rate = 20
    duration = 6
    mix = { crash = 1.0 }
    [[faults.timeline]]
    at = 2.0
    fault = "pause"
    target = "one"
    duration = 1.0
    [checks]
    supervisors_within = 3
    """
)


async def test_a_supervisor_that_cannot_restart_a_child_leaves_its_tree_short(
    tmp_path, monkeypatch
):
    """A planted bug: supervisors silently drop every restart of a child s2 (the nested
    supervisor's second worker) after its first start on each node: the trees stay short after
    the heal, and the checker says where."""
    from ember.actors._supervisor import Supervisor

    original = Supervisor._start
    started: set[tuple[str, str]] = set()

    async def forget_restarts(self, c):
        key = (self.node.name, c.spec.id)
        if c.spec.id == "s2" and key in started:
            return None  # planted: the child is not started, and nothing says so
        started.add(key)
        return await original(self, c)

    monkeypatch.setattr(Supervisor, "_start", forget_restarts)
    result = await run(SUPERVISED, 3, tmp_path)
    check = next(c for c in result.checks if c.name == "supervisors_full")
    assert check.validity is Validity.INVALID, check.summary
    assert check.figures["crashes"] > 20 and check.figures["lost_trees"] == 0
    short = check.witness["short"]
    assert short and all("sub/s2" in row["missing"] for row in short.values())


CONTRACTS = textwrap.dedent(
    """\
    settle = 1
    [cluster]
    nodes = 3
    [[workload]]
    kind = "contracts"
    clients = 4
    rate = 20
    duration = 5
    timeout = 5
    [[faults.timeline]]
    at = 1.0
    fault = "kill"
    target = "leader"
    group = "contracts"
    duration = 2.0
    [checks]
    contracts_within = 15
    """
)


async def test_a_retried_delivery_answered_from_the_first_attempt_leaves_a_run_waiting(
    tmp_path, monkeypatch
):
    """The bug the contracts workload found, planted back: the store write of a delivery keyed
    by its event id alone, so a delivery retried after NoMatchingRun (its run's start not yet
    in the store) got the first answer again, and its run waited for an event it was sent."""
    from ember.contracts._service import ContractsService

    monkeypatch.setattr(ContractsService, "_request_id", lambda self, op, key: f"{op}:{key}")
    result = await run(CONTRACTS, 1, tmp_path)
    check = next(c for c in result.checks if c.name == "contracts_once")
    assert check.validity is Validity.INVALID, check.summary
    problems = {r["problem"] for r in check.witness["runs"]}
    assert problems == {"pending"}, check.witness
    assert "waiting for event 'paid'" in check.witness["runs"][0]["why"]
