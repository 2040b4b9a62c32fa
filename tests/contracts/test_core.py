"""The pure scheduler of a run, driven by hand (no event loop, time passed in): readiness,
parallelism, retries with backoff, timeouts, awaits and their events, lost nodes, collections,
branches, cancellation, and restoring a run from its record."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember.contracts import Contract, Input, Retry, await_event, branch, collection, compute
from ember.contracts._core import Abort, Launch, RunCore, TaskStatus, error_of_record
from ember.contracts._errors import (
    AwaitTimeout,
    NoCapableNode,
    StepFailed,
    StepOutcomeUnknown,
    StepTimeout,
)
from ember.contracts._graph import Graph
from ember.contracts._values import CollectionResult, EventTimedOut, Failure


def launches(core: RunCore) -> list[Launch]:
    return [e for e in core.take_effects() if isinstance(e, Launch)]


def boom(node: str = "a") -> Failure:
    return Failure("ValueError", "boom", node=node)


class Diamond(Contract):
    x = Input(int)

    @compute
    def a(x: int) -> int:
        return x + 1

    @compute
    def b(x: int) -> int:
        return x * 2

    @compute
    def c(a: int, b: int) -> int:
        return a + b

    outputs = ("c",)


def test_diamond_runs_each_step_after_its_dependencies() -> None:
    core = RunCore(Diamond.graph(), "r1", {"x": 3})
    core.start(0.0)
    first = launches(core)
    assert [(launch.key, launch.args) for launch in first] == [("a", {"x": 3}), ("b", {"x": 3})]
    core.succeeded("a", 1, 4, 1.0)
    assert launches(core) == []  # c still needs b
    core.succeeded("b", 1, 6, 2.0)
    (c,) = launches(core)
    assert (c.key, c.args, c.attempt) == ("c", {"a": 4, "b": 6}, 1)
    core.succeeded("c", 1, 10, 3.0)
    assert core.outcome == ("succeeded", {"c": 10}, None)
    changes, _ = core.take_changes()
    assert changes["c"]["s"] == "succeeded" and changes["c"]["v"] == 10


def wide(n: int) -> Graph:
    body: dict[str, Any] = {"x": Input(int)}
    for i in range(n):
        body[f"s{i}"] = compute(lambda x: x)
    return type("Wide", (Contract,), body).graph()  # type: ignore[no-any-return]


def test_parallelism_is_bounded() -> None:
    core = RunCore(wide(10), "r", {"x": 1}, max_parallel=3)
    core.start(0.0)
    started = launches(core)
    assert [launch.key for launch in started] == ["s0", "s1", "s2"]
    assert core.running == 3
    core.succeeded("s1", 1, 1, 1.0)
    assert [launch.key for launch in launches(core)] == ["s3"]
    assert core.state()[0] == "running"


class Flaky(Contract):
    @compute(retry=Retry(attempts=3, initial=2.0, backoff=3.0), timeout=5.0)
    def call() -> int:
        return 1

    outputs = ("call",)


def test_retries_back_off_as_data_then_fail() -> None:
    core = RunCore(Flaky.graph(), "r", {})
    core.start(0.0)
    (first,) = launches(core)
    assert first.attempt == 1
    core.failed("call", 1, boom(), 1.0)
    assert core.tasks["call"].status == TaskStatus.RETRYING
    assert core.next_wakeup() == 3.0  # 1.0 + initial 2.0
    core.tick(2.9)
    assert launches(core) == []
    core.tick(3.0)
    (second,) = launches(core)
    assert second.attempt == 2
    core.failed("call", 2, boom(), 4.0)
    assert core.next_wakeup() == 10.0  # 4.0 + 2.0 * 3.0
    core.tick(10.0)
    (third,) = launches(core)
    assert third.attempt == 3
    core.failed("call", 3, boom("b"), 11.0)
    assert core.outcome is not None and core.outcome[0] == "failed"
    err = error_of_record(core.outcome[2])
    assert isinstance(err, StepFailed) and not isinstance(err, StepTimeout)
    assert (err.step, err.kind, err.attempts, err.node) == ("call", "ValueError", 3, "b")
    assert str(err) == ("run r: step 'call' failed on node b after 3 attempt(s): ValueError: boom")


def test_a_stale_report_is_ignored() -> None:
    core = RunCore(Flaky.graph(), "r", {})
    core.start(0.0)
    launches(core)
    core.failed("call", 1, boom(), 1.0)
    core.succeeded("call", 1, "late", 1.5)  # attempt 1 already failed
    assert core.tasks["call"].status == TaskStatus.RETRYING


def test_attempt_timeout_aborts_and_counts_as_a_failure() -> None:
    core = RunCore(Flaky.graph(), "r", {})
    core.start(0.0)
    launches(core)
    assert core.next_wakeup() == 5.0
    core.tick(5.0)
    effects = core.take_effects()
    assert Abort("call", 1, "timeout") in effects
    assert core.tasks["call"].status == TaskStatus.RETRYING
    core.tick(7.0)  # 5.0 + 2.0
    (again,) = launches(core)
    assert again.attempt == 2
    core.tick(12.0)
    core.tick(18.0)  # 12 + 6
    launches(core)
    core.tick(23.0)
    assert core.outcome is not None
    err = error_of_record(core.outcome[2])
    assert isinstance(err, StepTimeout) and isinstance(err, TimeoutError)
    assert err.attempts == 3


def test_non_retryable_errors_end_at_once() -> None:
    class Strict(Contract):
        @compute(retry=Retry(non_retryable=("KeyError",)))
        def a() -> int:
            return 1

    core = RunCore(Strict.graph(), "r", {})
    core.start(0.0)
    launches(core)
    core.failed("a", 1, Failure("builtins.KeyError", "k"), 1.0)
    assert core.outcome is not None and core.outcome[0] == "failed"


class Lead(Contract):
    lead_id = Input(str)
    correlate_by = ("lead_id",)

    @compute
    def prepared(lead_id: str) -> str:
        return lead_id

    crm = await_event("crm_synced", after=("prepared",), timeout=60)
    billing = await_event("billing_ready", timeout=30, on_timeout="continue")

    @compute
    def report(crm: Any, billing: Any) -> list[Any]:
        return [crm, billing]

    outputs = ("report",)


def test_an_event_that_arrives_before_its_await_is_kept() -> None:
    core = RunCore(Lead.graph(), "r", {"lead_id": "L1"})
    core.start(0.0)
    (prepared,) = launches(core)
    assert prepared.key == "prepared"
    assert core.tasks["billing"].status == TaskStatus.WAITING
    assert core.deliver("crm_synced", {"crm": 1}, 0.5) == "kept"
    assert core.deliver("crm_synced", {"crm": 2}, 0.6) == "duplicate"
    assert core.deliver("nobody_awaits", {}, 0.6) == "unexpected"
    core.succeeded("prepared", 1, "L1", 1.0)
    assert core.tasks["crm"].status == TaskStatus.SUCCEEDED  # consumed when reached
    status, reason, events, deadline = core.state()
    assert (status, events, deadline) == ("waiting", ["billing_ready"], 30.0)
    assert reason == "waiting for event 'billing_ready'"
    assert core.deliver("billing_ready", {"paid": True}, 2.0) == "consumed"
    (report,) = launches(core)
    assert report.args == {"crm": {"crm": 1}, "billing": {"paid": True}}


def test_await_timeouts_fail_or_continue() -> None:
    core = RunCore(Lead.graph(), "r", {"lead_id": "L1"})
    core.start(0.0)
    launches(core)
    core.tick(30.0)  # billing: on_timeout="continue"
    assert core.values["billing"] == EventTimedOut("billing_ready", 30)
    core.succeeded("prepared", 1, "L1", 31.0)
    assert core.tasks["crm"].deadline == 91.0  # reached at 31, timeout 60
    core.tick(91.0)
    assert core.outcome is not None and core.outcome[0] == "failed"
    err = error_of_record(core.outcome[2])
    assert isinstance(err, AwaitTimeout) and err.event == "crm_synced" and err.timeout == 60


class Charge(Contract):
    @compute(capabilities="network")
    def charge() -> str:
        return "charged"

    @compute(capabilities="network", idempotent=True)
    def lookup() -> str:
        return "found"


def test_a_lost_node_reruns_idempotent_steps_and_not_the_others() -> None:
    core = RunCore(Charge.graph(), "r", {})
    core.start(0.0)
    assert [launch.key for launch in launches(core)] == ["charge", "lookup"]
    core.placed("charge", 1, "b", 0.0)
    core.placed("lookup", 1, "b", 0.0)
    core.lost("lookup", 1, 1.0)
    (again,) = launches(core)
    assert (again.key, again.attempt) == ("lookup", 2)
    core.lost("charge", 1, 1.0)
    assert core.outcome is not None and core.outcome[0] == "unknown"
    err = error_of_record(core.outcome[2])
    assert isinstance(err, StepOutcomeUnknown) and (err.step, err.node) == ("charge", "b")
    assert core.tasks["charge"].status == TaskStatus.UNKNOWN
    assert Abort("lookup", 2, "unknown") in core.take_effects()


def test_placement_waits_with_a_reason_then_fails() -> None:
    core = RunCore(Charge.graph(), "r", {}, placement_timeout=2.0, placement_retry=0.5)
    core.start(0.0)
    launches(core)
    core.unplaced("charge", 1, "no node offers network", 0.0)
    status, reason, _, _ = core.state()
    assert status == "running" and "charge: waiting for a node: no node offers network" in reason
    core.tick(0.5)
    (again,) = [launch for launch in launches(core) if launch.key == "charge"]
    assert again.attempt == 1  # the attempt that never ran is not counted
    core.unplaced("charge", 1, "no node offers network", 2.0)
    assert core.outcome is not None
    err = error_of_record(core.outcome[2])
    assert isinstance(err, NoCapableNode) and "no node offers network" in str(err)


def test_collection_items_run_in_parallel_fail_fast_or_collect() -> None:
    class Scores(Contract):
        items = Input(list)
        factor = Input(int)
        fast = collection("items", lambda item, factor: item * factor)
        slow = collection("items", lambda item: item, mode="collect")

    core = RunCore(Scores.graph(), "r", {"items": [1, 2, 3], "factor": 10})
    core.start(0.0)
    started = launches(core)
    assert [launch.key for launch in started] == [
        "fast[0]",
        "fast[1]",
        "fast[2]",
        "slow[0]",
        "slow[1]",
        "slow[2]",
    ]
    assert started[1].args == {"factor": 10, "item": 2}
    for i in (2, 0, 1):
        core.succeeded(f"fast[{i}]", 1, (i + 1) * 10, 1.0)
    assert core.values["fast"] == [10, 20, 30]
    core.succeeded("slow[0]", 1, 1, 1.0)
    core.failed("slow[1]", 1, boom(), 1.0)
    core.succeeded("slow[2]", 1, 3, 1.0)
    result = core.values["slow"]
    assert isinstance(result, CollectionResult)
    assert result.values == [1, 3] and [f.index for f in result.failures] == [1]
    assert core.outcome is not None and core.outcome[0] == "succeeded"

    core = RunCore(Scores.graph(), "r2", {"items": [1, 2], "factor": 1})
    core.start(0.0)
    launches(core)
    core.failed("fast[1]", 1, boom(), 1.0)
    assert core.outcome is not None and core.outcome[0] == "failed"
    assert error_of_record(core.outcome[2]).step == "fast[1]"  # type: ignore[attr-defined]


def test_an_empty_collection_and_a_non_list() -> None:
    class Each(Contract):
        items = Input(object)
        out = collection("items", lambda item: item)
        outputs = ("out",)

    core = RunCore(Each.graph(), "r", {"items": []})
    core.start(0.0)
    assert core.outcome == ("succeeded", {"out": []}, None)
    core = RunCore(Each.graph(), "r", {"items": 7})
    core.start(0.0)
    assert core.outcome is not None
    assert "needs a list of items" in str(error_of_record(core.outcome[2]))


def test_branch_picks_a_case_or_fails_without_default() -> None:
    def us(amount: int) -> int:
        return amount

    class Route(Contract):
        country = Input(str)
        amount = Input(int)
        tax = branch("country", {"US": us})

    core = RunCore(Route.graph(), "r", {"country": "US", "amount": 5})
    core.start(0.0)
    (launch,) = launches(core)
    assert launch.call.fn is us and launch.args == {"amount": 5}
    core = RunCore(Route.graph(), "r", {"country": "FR", "amount": 5})
    core.start(0.0)
    assert core.outcome is not None
    assert "no case for country = 'FR'" in str(error_of_record(core.outcome[2]))


def test_cancel_aborts_what_runs() -> None:
    core = RunCore(Diamond.graph(), "r", {"x": 1})
    core.start(0.0)
    launches(core)
    core.cancel("by the operator", 1.0)
    assert core.outcome is not None and core.outcome[0] == "cancelled"
    assert {e.key for e in core.take_effects() if isinstance(e, Abort)} == {"a", "b"}
    assert "cancelled: by the operator" in str(error_of_record(core.outcome[2]))


def persisted(core: RunCore) -> dict[str, dict[str, Any]]:
    """Apply a core's changes to a plain record, as the store does."""
    record: dict[str, dict[str, Any]] = {}
    changes, marks = core.take_changes()
    for key, fields in changes.items():
        record.setdefault(key, {}).update(fields)
    for kind, key, name, value in marks:
        record.setdefault(key, {}).setdefault(kind, {})[name] = value
    return record


def test_restore_keeps_done_steps_reruns_idempotent_and_flags_unknown() -> None:
    class Mixed(Contract):
        x = Input(int)

        @compute
        def a(x: int) -> int:
            return x

        @compute(idempotent=True)
        def b(a: int) -> int:
            return a

        @compute
        def c(a: int) -> int:
            return a

    core = RunCore(Mixed.graph(), "r", {"x": 1})
    core.start(0.0)
    launches(core)
    core.placed("a", 1, "n1", 0.0)
    core.succeeded("a", 1, 1, 1.0)
    launches(core)
    core.placed("b", 1, "n1", 1.0)
    core.checkpoint("b", "page", 3)
    record = persisted(core)

    # b was running and is idempotent: it runs again from its checkpoint
    only_b = {k: v for k, v in record.items() if k != "c"}
    again = RunCore.restore(Mixed.graph(), "r", inputs={"x": 1}, tasks=only_b, events={}, now=5.0)
    relaunched = launches(again)
    assert [(launch.key, launch.attempt) for launch in relaunched] == [("b", 2), ("c", 1)]
    assert relaunched[0].checkpoints == {"page": 3}
    assert again.values["a"] == 1

    # c was running too and is not idempotent: outcome unknown
    core.placed("c", 1, "n1", 1.0)
    record = {k: {**record.get(k, {}), **v} for k, v in persisted(core).items()} | {
        k: v for k, v in record.items() if k not in ("c",)
    }
    record["c"] = {"s": "running", "a": 1, "n": "n1"}
    lost = RunCore.restore(Mixed.graph(), "r", inputs={"x": 1}, tasks=record, events={}, now=5.0)
    assert lost.outcome is not None and lost.outcome[0] == "unknown"
    assert error_of_record(lost.outcome[2]).step == "c"  # type: ignore[attr-defined]


def test_restore_a_waiting_run_keeps_its_deadline_and_takes_kept_events() -> None:
    core = RunCore(Lead.graph(), "r", {"lead_id": "L"})
    core.start(0.0)
    launches(core)
    core.placed("prepared", 1, "n1", 0.0)
    core.succeeded("prepared", 1, "L", 10.0)
    record = persisted(core)
    assert record["crm"]["s"] == "waiting" and record["crm"]["t0"] == 10.0
    back = RunCore.restore(
        Lead.graph(),
        "r",
        inputs={"lead_id": "L"},
        tasks=record,
        events={"billing_ready": "paid"},
        now=50.0,
    )
    assert back.tasks["billing"].status == TaskStatus.SUCCEEDED
    assert back.tasks["crm"].deadline == 70.0
    assert back.state()[:3] == ("waiting", "waiting for event 'crm_synced'", ["crm_synced"])
    back.tick(70.0)
    assert back.outcome is not None and back.outcome[0] == "failed"


# --- the property: any DAG runs every step once, after its dependencies -----------------------


@st.composite
def dags(draw: Any) -> tuple[Graph, list[int]]:
    n = draw(st.integers(1, 14))
    deps = [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 4)))) if i else []
        for i in range(n)
    ]
    body: dict[str, Any] = {"seed": Input(int)}
    for i in range(n):
        names = ["seed"] + [f"s{d}" for d in deps[i]]
        body[f"s{i}"] = compute(depends_on=names)(lambda **kw: sum(kw.values()))
    graph = type("Dag", (Contract,), body).graph()
    order = draw(st.permutations(list(range(100))))
    return graph, order


@pytest.mark.parametrize("n", [1, 50])
def test_a_chain_runs_in_order(n: int) -> None:
    body: dict[str, Any] = {"x": Input(int)}
    prev = "x"
    for i in range(n):
        body[f"s{i}"] = compute(depends_on=(prev,))(lambda **kw: next(iter(kw.values())) + 1)
        prev = f"s{i}"
    body["outputs"] = (prev,)
    graph = type("Chain", (Contract,), body).graph()
    core = RunCore(graph, "r", {"x": 0})
    core.start(0.0)
    for i in range(n):
        (launch,) = launches(core)
        assert launch.key == f"s{i}" and launch.args == {("x" if i == 0 else f"s{i - 1}"): i}
        core.succeeded(launch.key, 1, i + 1, float(i))
    assert core.outcome == ("succeeded", {prev: n}, None)


def _evaluate(graph: Graph, seed: int) -> dict[str, int]:
    """Every step's value as the DAGs of ``dags`` define it, computed directly."""
    values: dict[str, int] = {"seed": seed}
    for name in graph.steps:  # in a topological order
        values[name] = sum(values[d] for d in graph.steps[name].deps)
    return values


@settings(max_examples=200, deadline=None)
@given(dags(), st.integers(1, 5), st.booleans(), st.data())
def test_any_dag_runs_every_step_once_after_its_dependencies(
    dag: tuple[Graph, list[int]], parallel: int, pipeline: bool, data: Any
) -> None:
    """Any DAG launches each step once, after its dependencies, and gives every step's value;
    with ``pipeline``, running steps' successors are launched after them at random (held until
    they succeed, as a step host does), which changes none of that."""
    graph, _ = dag
    core = RunCore(graph, "r", {"seed": 1}, max_parallel=parallel)
    core.start(0.0)
    done: set[str] = set()
    launched: list[str] = []
    running: list[Launch] = []
    held: dict[str, Launch] = {}  # by the key of the step it waits for
    now = 0.0
    while core.outcome is None:
        for effect in core.take_effects():
            assert isinstance(effect, Launch)
            step = graph.steps[effect.key]
            assert all(d in done for d in step.deps if d in graph.steps), effect.key
            assert effect.key not in launched
            launched.append(effect.key)
            running.append(effect)
        for launch in list(running):
            after = core.pipelinable(launch.key)
            if after is not None and pipeline and data.draw(st.booleans()):
                follower = core.launch_after(launch.key, after, now)
                assert follower is not None and follower.key not in launched
                others = [d for d in after.deps if d in graph.steps and d != launch.key]
                assert all(d in done for d in others)
                launched.append(follower.key)
                held[launch.key] = follower
        assert 0 < len(running) + len(held) <= parallel
        pick = running.pop(data.draw(st.integers(0, len(running) - 1)))
        now += 1
        value = sum(pick.args.values())
        core.succeeded(pick.key, pick.attempt, value, now)
        done.add(pick.key)
        follower = held.pop(pick.key, None)
        if follower is not None:  # started where its predecessor ran, with its result
            assert core.tasks[follower.key].t0 == now
            running.append(follower._replace(args={**follower.args, pick.key: value}))
    assert sorted(launched) == sorted(graph.steps)
    assert core.outcome[0] == "succeeded"
    expected = _evaluate(graph, 1)
    assert {name: core.values[name] for name in graph.steps} == {
        name: expected[name] for name in graph.steps
    }


class Pair(Contract):
    x = Input(int)

    @compute(retry=Retry(attempts=2, initial=1.0))
    def k(x: int) -> int:
        return x + 1

    @compute(timeout=5.0)
    def s(k: int) -> int:
        return k * 2

    outputs = ("s",)


def test_a_step_launched_after_another_starts_when_it_succeeds_or_never() -> None:
    core = RunCore(Pair.graph(), "r", {"x": 1})
    core.start(0.0)
    (k,) = launches(core)
    assert k.key == "k"
    step = core.pipelinable("k")
    assert step is not None and step.name == "s"
    s = core.launch_after("k", step, 0.0)
    assert s is not None and s.args == {} and s.attempt == 1
    assert core.pipelinable("k") is None  # one follower per running step
    core.placed("s", 1, "n1", 0.0)
    # k fails: s never started, and is undone (its shell is told by an abort)
    core.failed("k", 1, boom(), 1.0)
    assert Abort("s", 1, "not started") in core.take_effects()
    assert core.tasks["s"].status == TaskStatus.PENDING and core.tasks["s"].attempt == 0
    assert core.take_changes()[0]["s"]["s"] == TaskStatus.PENDING
    core.tick(2.0)
    (k2,) = launches(core)
    assert k2.attempt == 2 and core.pipelinable("k") is None  # launched as usual from here
    core.succeeded("k", 2, 2, 3.0)
    (s2,) = launches(core)
    assert (s2.key, s2.attempt, s2.args) == ("s", 1, {"k": 2})
    assert core.next_wakeup() == 8.0  # its timeout counts from its launch, at 3.0


def held_after_k() -> RunCore:
    """A run of ``Pair`` with ``k`` running and ``s`` launched after it."""
    core = RunCore(Pair.graph(), "r", {"x": 1})
    core.start(0.0)
    launches(core)
    step = core.pipelinable("k")
    assert step is not None
    assert core.launch_after("k", step, 0.0) is not None
    return core


def test_a_held_step_times_out_from_its_start_and_counts_as_launched_when_lost() -> None:
    core = held_after_k()
    assert core.next_wakeup() is None  # not started: no deadline yet
    core.succeeded("k", 1, 2, 4.0)
    assert launches(core) == [] and core.tasks["s"].t0 == 4.0
    assert core.next_wakeup() == 9.0
    core.tick(9.0)
    assert core.outcome is not None and core.outcome[2]["type"] == "StepTimeout"
    # lost while s is held: k is not idempotent, so the run's outcome is unknown, naming k
    core = held_after_k()
    core.placed("k", 1, "n1", 0.0)
    core.placed("s", 1, "n1", 0.0)
    core.lost("k", 1, 1.0, detail="node n1 lost while it ran")
    assert core.outcome is not None and core.outcome[0] == "unknown"
    assert core.outcome[2]["step"] == "k"
    # a run resumed from a record that shows s launched (held) after k, which has not
    # succeeded: s may have run, so its outcome is unknown (not run again when k is done)
    record = {"k": {"s": "retrying", "a": 1, "r": 9.0}, "s": {"s": "running", "a": 1, "n": "n1"}}
    back = RunCore.restore(Pair.graph(), "r", inputs={"x": 1}, tasks=record, events={}, now=5.0)
    assert back.outcome is not None and back.outcome[0] == "unknown"
    assert back.outcome[2]["step"] == "s"
