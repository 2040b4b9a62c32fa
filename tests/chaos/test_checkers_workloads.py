"""The supervisors and contracts checkers on histories and observations with known violations
(a tree left short, a tree that vanished, a run left waiting, a charge run twice...) and on
valid ones with documented unknown outcomes, which they must accept."""

from histkit import Script

from ember.chaos._checkers import (
    Validity,
    check_contracts,
    check_supervisors,
    expected_order_result,
    missing_children,
    payment_of,
)
from ember.chaos._probe import expected_tree

EXPECTED = expected_tree()


def full_tree(node, skip=()):
    """A snapshot of ``node``'s tree with every child running but those in ``skip``."""
    return {
        level: [
            [c, None if (f"{level}/{c}" if level else c) in skip else f"<{node}.9.1>"] for c in ids
        ]
        for level, ids in EXPECTED.items()
    }


def observed(trees, full_after=0.5):
    return {"expected": EXPECTED, "trees": trees, "full_after": full_after, "within": 10.0}


def fault(kind, targets, start, stop):
    return {"fault": kind, "targets": targets, "start": start, "stop": stop, "detail": ""}


def tree_history(gone_on="n2"):
    """Trees started on n1..n3, children crashed and killed, and the tree of ``gone_on`` found
    gone at t=5 (then started again)."""
    s = Script()
    for p, node in enumerate(("n1", "n2", "n3")):
        s.op(p, "start_tree", node, None, 0.0, 0.01, f"<{node}.3.1>")
    s.op(10, "crash", "n1", "w1", 1.0, 1.01, "<n1.4.1>")
    s.op(11, "kill", "n3", "sub", 1.5, 1.51, "<n3.5.1>")
    s.op(12, "kill", gone_on, "sub/s2", 5.0, 5.01, None, "fail", "NoProc")
    s.op(13, "start_tree", gone_on, None, 5.02, 5.03, f"<{gone_on}.3.2>")
    s.op(14, "crash", "n3", "sub/s1", 6.0, 6.01, None, "fail", "NotRunning")  # not a loss
    return s.history()


# --- supervisors ---------------------------------------------------------------------------------


def test_missing_children_names_the_paths_not_running():
    assert missing_children(full_tree("n1"), EXPECTED) == []
    assert missing_children(full_tree("n1", skip={"w2", "sub/s3"}), EXPECTED) == ["w2", "sub/s3"]
    without_nested = {"": full_tree("n1")[""]}  # the nested supervisor did not answer
    assert missing_children(without_nested, EXPECTED) == ["sub/s1", "sub/s2", "sub/s3"]
    assert missing_children({"error": "NoProc"}, EXPECTED) == ["*"]


def test_trees_at_full_strength_and_a_loss_explained_by_a_kill_are_valid():
    trees = {n: full_tree(n) for n in ("n1", "n2", "n3")}
    faults = [fault("kill", ["n2"], 3.0, 4.0), fault("partition", ["n1"], 7.0, 8.0)]
    result = check_supervisors(tree_history(), observed(trees), faults)
    assert result.validity is Validity.VALID, result.summary
    assert result.figures["crashes"] == 1 and result.figures["kills"] == 1
    assert result.figures["trees_started"] == 4 and result.figures["lost_trees"] == 0


def test_a_tree_left_short_after_the_heal_is_invalid():
    trees = {n: full_tree(n) for n in ("n1", "n3")}
    trees["n2"] = full_tree("n2", skip={"sub/s2"})
    faults = [fault("kill", ["n2"], 3.0, 4.0)]
    result = check_supervisors(tree_history(), observed(trees, full_after=None), faults)
    assert result.validity is Validity.INVALID
    assert "n2 misses sub/s2" in result.summary
    assert result.witness["short"]["n2"]["missing"] == ["sub/s2"]


def test_a_tree_gone_without_a_fault_on_its_node_is_invalid():
    trees = {n: full_tree(n) for n in ("n1", "n2", "n3")}
    # A kill of n1 and a pause of n2 do not end n2's processes; a kill of n2 before its tree
    # was started does not explain it either.
    faults = [
        fault("kill", ["n1"], 3.0, 4.0),
        fault("pause", ["n2"], 3.0, 4.5),
        fault("kill", ["n2"], -1.0, -0.5),
    ]
    result = check_supervisors(tree_history(), observed(trees), faults)
    assert result.validity is Validity.INVALID
    [lost] = result.witness["lost"]
    assert (lost["node"], lost["tree_started_at"], lost["found_gone_at"]) == ("n2", 0.0, 5.01)
    restarted_later = [fault("restart", ["n2"], 5.5, 5.6)]  # after it was found gone
    assert check_supervisors(tree_history(), observed(trees), restarted_later).validity is (
        Validity.INVALID
    )


def test_a_tree_that_never_answers_is_not_judged_and_none_is_unknown():
    some = {"n1": full_tree("n1"), "n2": {"error": "TimeoutError"}}
    result = check_supervisors(
        tree_history(gone_on="n1"), observed(some), [fault("kill", ["n1"], 2.0, 3.0)]
    )
    assert result.validity is Validity.VALID and result.figures["answered"] == 1
    gone = {"n1": full_tree("n1"), "n2": {"error": "NoProc"}}  # no tree there is judged
    assert check_supervisors(tree_history(), observed(gone), []).validity is Validity.INVALID
    none = {"n1": {"error": "NodeDown"}, "n2": {"error": "TimeoutError"}}
    assert check_supervisors(tree_history(), observed(none), []).validity is Validity.UNKNOWN


# --- contracts -----------------------------------------------------------------------------------


class Runs:
    """A contracts workload's history, run by run."""

    def __init__(self):
        self.s = Script()
        self.p = 0

    def _op(self, f, run, value, start, end, result=None, type="ok", error=None):
        self.p += 1
        self.s.op(self.p, f, run, value, start, end, result, type, error)

    def run(
        self,
        run,
        amount=7,
        *,
        start="ok",
        ending="succeeded",
        noted=("reserve", "charge"),
        result=None,
        error=None,
        reason="",
        t=1.0,
        found=True,
    ):
        self._op(
            "start",
            run,
            {"node": "n1", "amount": amount},
            t,
            t + 0.1,
            {"created": True} if start == "ok" else None,
            start,
        )
        self._op("deliver", run, payment_of(run), t + 0.2, t + 0.3, [run])
        if not found:
            self._op("final_result", run, None, 20.0, 20.1, None, "fail", "RunNotFound")
        elif ending == "unreachable":
            self._op("final_result", run, None, 20.0, 20.1, None, "info", "StoreUnavailable")
        else:
            end = {
                "status": ending,
                "reason": reason,
                "owner": "n1",
                "result": result
                if result is not None
                else (
                    expected_order_result(run, amount, payment_of(run))
                    if ending == "succeeded"
                    else None
                ),
                "error": error,
                "inputs": {"order": run, "amount": amount, "ledger": ["n1", "n2", "n3"]},
                "steps": {},
            }
            self._op("final_result", run, None, 20.0, 20.1, end)
        rows = [[step, "n1", 1] for step in noted]
        self._op("ledger", run, None, 20.2, 20.3, rows)
        return self

    def history(self):
        return self.s.history()


FAULTS = [fault("kill", ["n1"], 2.0, 5.0)]


def test_runs_completed_once_with_documented_unknowns_are_valid():
    runs = (
        Runs()
        .run("order-1")
        .run("order-2", noted=("reserve", "reserve", "charge"))  # idempotent: ran again
        .run("order-3", start="info", found=False, noted=())  # never started: nothing owed
        .run("order-4", start="info")  # its start took effect after all: held to the rules
        .run(
            "order-5",
            ending="unknown",
            error="StepOutcomeUnknown",
            noted=("reserve",),
            reason="charge: its node was lost",
            t=1.5,
        )
    )
    result = check_contracts(runs.history(), FAULTS)
    assert result.validity is Validity.VALID, result.summary
    f = result.figures
    assert (f["runs"], f["acknowledged"], f["succeeded"]) == (5, 4, 3)
    assert f["unknown_outcome"] == 1 and f["never_started"] == 1 and f["idempotent_reruns"] == 1


def judge(runs, faults=FAULTS):
    result = check_contracts(runs.history(), faults)
    assert result.validity is Validity.INVALID
    return [(r["run"], r["problem"]) for r in result.witness["runs"]]


def test_a_run_left_waiting_after_the_heal_is_invalid():
    # The bug the checker found: a run waiting for the event it had been sent.
    runs = (
        Runs()
        .run("order-1")
        .run("order-2", ending="waiting", reason="waiting for event 'paid'", noted=("reserve",))
    )
    assert judge(runs) == [("order-2", "pending")]


def test_a_non_idempotent_step_run_twice_is_invalid():
    assert judge(Runs().run("order-1", noted=("reserve", "charge", "charge"))) == [
        ("order-1", "twice")
    ]
    unknown_twice = Runs().run(
        "order-2", ending="unknown", error="StepOutcomeUnknown", noted=("charge", "charge")
    )
    assert judge(unknown_twice) == [("order-2", "twice")]


def test_a_wrong_result_a_lost_run_and_a_failed_run_are_invalid():
    runs = (
        Runs()
        .run("order-1", result={"charge": "charged order-1:3 with nothing"})
        .run("order-2", found=False, noted=())  # acknowledged, then no store has it
        .run("order-3", ending="failed", error="StepFailed", noted=("reserve", "charge"))
        .run("order-4", start="info", found=False, noted=("reserve",))  # steps of no run
    )
    assert judge(runs) == [
        ("order-1", "wrong_result"),
        ("order-2", "lost"),
        ("order-3", "failed"),
        ("order-4", "stray"),
    ]


def test_an_unknown_outcome_without_any_fault_is_invalid():
    runs = Runs().run("order-1", ending="unknown", error="StepOutcomeUnknown", noted=())
    assert judge(runs, faults=[]) == [("order-1", "failed")]
    assert check_contracts(runs.history(), FAULTS).validity is Validity.VALID


def test_runs_no_store_answered_for_make_it_unknown():
    result = check_contracts(
        Runs().run("order-1").run("order-2", ending="unreachable").history(), FAULTS
    )
    assert result.validity is Validity.UNKNOWN and result.figures["undecided"] == 1
    assert check_contracts(Script().history(), FAULTS).validity is Validity.UNKNOWN
