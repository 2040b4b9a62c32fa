"""Each checker on histories with known violations (it must catch them) and on valid ones with
many unknown outcomes (it must accept them)."""

import json
import random

from histkit import Script

from ember.chaos._checkers import (
    CheckResult,
    Validity,
    check_availability,
    check_calls,
    check_linearizable,
    check_logs,
    check_lost_writes,
    check_pg_converged,
    check_rss,
    check_unique_owners,
    overall,
)
from ember.chaos._history import History
from ember.testing._histories import random_kv_history


def history_of(ops):
    """A chaos history from checker operations (the generator's), unknown outcomes as info."""
    s = Script()
    for n, o in enumerate(sorted(ops, key=lambda o: o.start)):
        f, key, *args = o.input
        value = tuple(args) if f == "cas" else (args[0] if args else None)
        if o.end is None:
            s.op(n, f, key, value, o.start, o.start + 1e-6, None, "info")
        else:
            s.op(n, f, key, value, o.start, o.end, o.output)
    return s.history()


# --- linearizability ---------------------------------------------------------------------------


def test_linearizable_catches_a_stale_read_and_shows_the_window():
    h = (
        Script()
        .op(0, "write", "x", 1, 0.0, 1.0)
        .op(1, "write", "x", 2, 2.0, 3.0)
        .op(2, "read", "x", None, 4.0, 5.0, 1)
        .op(3, "write", "y", 7, 0.0, 1.0)
        .history()
    )
    r = check_linearizable(h)
    assert r.validity is Validity.INVALID
    assert r.witness["key"] == "x"
    assert r.witness["failing"]["op"] == "'x': read -> 1"
    window = [row["op"] for row in r.witness["window"]]
    assert window == ["'x': write 1", "'x': write 2", "'x': read -> 1"]
    assert r.witness["state"] == 2
    assert r.figures["illegal_keys"] == 1 and r.figures["keys"] == 2
    json.dumps(r.as_dict())  # a report can hold it


def test_linearizable_accepts_many_unknown_outcomes():
    ops = random_kv_history(random.Random(3), operations=3000, keys=10, clients=10, unknown=0.3)
    h = history_of(ops)
    assert h.counts()["info"] > 600
    r = check_linearizable(h)
    assert r.validity is Validity.VALID, r.summary
    assert r.figures["unknown_outcomes"] == h.counts()["info"]


def test_linearizable_is_unknown_when_out_of_budget():
    ops = random_kv_history(random.Random(4), operations=2000, keys=1, clients=10, unknown=0.2)
    r = check_linearizable(history_of(ops), budget=0.0)
    assert r.validity is Validity.UNKNOWN


# --- lost writes ---------------------------------------------------------------------------


def test_lost_write_detected_when_the_final_read_shows_an_older_value():
    h = (
        Script()
        .op(0, "write", "x", 1, 0.0, 1.0)
        .op(1, "write", "x", 2, 2.0, 3.0)  # acknowledged, after 1 was in place
        .op(2, "final_read", "x", None, 10.0, 11.0, 1)
        .history()
    )
    r = check_lost_writes(h)
    assert r.validity is Validity.INVALID
    assert [w["value"] for w in r.witness["lost"]] == [2]
    assert r.figures == {"acknowledged": 2, "lost": 1, "keys_read": 1, "keys_unread": 0}


def test_lost_write_detected_when_the_key_reads_empty():
    h = Script().op(0, "cas", "x", (None, 5), 0.0, 1.0, True).op(1, "final_read", "x", None, 5, 6)
    r = check_lost_writes(h.history())
    assert r.validity is Validity.INVALID


def test_concurrent_and_unknown_writes_are_not_lost():
    h = (
        Script()
        .op(0, "write", "x", 1, 0.0, 3.0)
        .op(1, "write", "x", 2, 1.0, 2.0)  # concurrent with 1: either may be last
        .op(2, "write", "x", 3, 4.0, 4.5, None, "info")  # may have happened late
        .op(3, "cas", "x", (9, 4), 5.0, 5.5, False)  # did not swap: wrote nothing
        .op(4, "write", "x", 5, 6.0, 6.5, None, "fail")  # did not happen
        .op(5, "final_read", "x", None, 10.0, 11.0, 1)
        .history()
    )
    # 3 was unknown and 1 is the final value: had 3 happened it would be lost, but it may not
    # have, and no acknowledged write came after 1.
    assert check_lost_writes(h).validity is Validity.VALID
    late = Script().op(0, "write", "x", 1, 0, 1).op(1, "write", "x", 2, 2, 3, None, "info")
    late.op(2, "write", "x", 3, 4, 5).op(3, "final_read", "x", None, 9, 10, 2)
    # 2's write was unknown and may have landed after 3 was acknowledged: not a loss.
    assert check_lost_writes(late.history()).validity is Validity.VALID


def test_lost_writes_unknown_without_a_final_read():
    h = Script().op(0, "write", "x", 1, 0.0, 1.0).op(1, "final_read", "x", None, 2, 3, None, "fail")
    r = check_lost_writes(h.history())
    assert r.validity is Validity.UNKNOWN and r.figures["keys_unread"] == 1


# --- availability, memory, logs ------------------------------------------------------------


def test_availability_reports_the_longest_gap_and_judges_it():
    s = Script()
    for n, t in enumerate([1.0, 2.0, 9.0, 9.5]):
        s.op(n, "write", "x", n, t - 0.1, t)
    s.op(9, "write", "x", 99, 3.0, 3.5, None, "fail")
    h = s.history()
    r = check_availability(h, start=0.0, end=10.0)
    assert r.validity is Validity.VALID
    assert r.figures["longest_gap_s"] == 7.0 and r.figures["longest_gap_from"] == 2.0
    assert check_availability(h, 0.0, 10.0, max_gap=5.0).validity is Validity.INVALID
    assert check_availability(History(), 0.0, 4.0).figures["longest_gap_s"] == 4.0


def test_rss_over_the_limit_is_invalid():
    samples = {"n1": [(0.0, 50 * 2**20), (1.0, 60 * 2**20)], "n2": [(0.0, 300 * 2**20)]}
    r = check_rss(samples, limit_mb=200)
    assert r.validity is Validity.INVALID and r.witness == {"over": {"n2": 300.0}}
    assert check_rss({"n1": samples["n1"]}, limit_mb=200).validity is Validity.VALID
    assert check_rss({"n1": []}, limit_mb=200).validity is Validity.UNKNOWN


def test_logs_with_tracebacks_are_invalid_unless_allowed():
    ok = json.dumps({"level": "error", "msg": "connection refused"})
    bad = json.dumps({"level": "error", "msg": "actor crashed", "exc": "Traceback ..."})
    plain = "Traceback (most recent call last):"
    assert check_logs({"n1": [ok]}).validity is Validity.VALID
    r = check_logs({"n1": [ok, bad], "n2": [plain]})
    assert r.validity is Validity.INVALID and r.figures["problems"] == 2
    assert r.witness["problems"][0]["line"] == 2
    allowed = check_logs({"n1": [bad, ok]}, allow=["actor crashed"])
    assert allowed.validity is Validity.VALID and allowed.figures["accepted"] == 1
    assert "1 expected ones accepted" in allowed.summary


def test_overall_and_exit_codes():
    def result(v):
        return CheckResult("c", v, "")

    assert overall([]) is Validity.VALID
    assert overall([result(Validity.VALID), result(Validity.UNKNOWN)]) is Validity.UNKNOWN
    assert overall([result(Validity.UNKNOWN), result(Validity.INVALID)]) is Validity.INVALID
    assert [v.exit_code for v in Validity] == [0, 1, 2]


# --- unique owners -------------------------------------------------------------------------


def test_unique_owners_catches_views_that_disagree_after_the_heal():
    views = {"n1": {"a": "<n1.2.1>", "b": None}, "n2": {"a": "<n3.2.1>", "b": None}}
    r = check_unique_owners(History(), views, [], "eventual")
    assert r.validity is Validity.INVALID and r.name == "unique_eventual_names"
    assert r.witness["diverged"] == [{"name": "a", "owners": {"n1": "<n1.2.1>", "n2": "<n3.2.1>"}}]
    same = {"n1": {"a": "<n1.2.1>"}, "n2": {"a": "<n1.2.1>"}}
    assert check_unique_owners(History(), same, [], "eventual").validity is Validity.VALID
    assert check_unique_owners(History(), {}, [], "eventual").validity is Validity.UNKNOWN


def test_unique_owners_says_when_the_views_agreed_and_for_how_long_they_did_not():
    views = {"n1": {"a": "<n1.2.1>"}, "n2": {"a": "<n3.2.1>"}}
    late = check_unique_owners(History(), views, [], "eventual", converged_after=None, within=15)
    assert late.validity is Validity.INVALID and "15 s after the heal" in late.summary
    assert late.figures["converged_after_s"] is None and late.figures["within_s"] == 15
    same = {"n1": {"a": "<n1.2.1>"}, "n2": {"a": "<n1.2.1>"}}
    ok = check_unique_owners(History(), same, [], "eventual", converged_after=6.5, within=15)
    assert ok.validity is Validity.VALID and ok.figures["converged_after_s"] == 6.5
    assert "6.5 s after the heal" in ok.summary


def test_unique_owners_catches_a_consistent_name_held_twice():
    views = {"n1": {"c": "<n2.2.1>"}, "n2": {"c": "<n2.2.1>"}}
    taken = (
        Script()
        .op(0, "register", "c", "n1", 0.0, 1.0, ("<n1.2.1>", 1))
        .op(1, "register", "c", "n2", 2.0, 3.0, ("<n2.2.1>", 2))  # nobody released it
        .history()
    )
    r = check_unique_owners(taken, views, [], "consistent")
    assert r.validity is Validity.INVALID and r.figures["double_owners"] == 1
    assert r.witness["double_owners"][0]["second"]["holder"] == "<n2.2.1>"
    # Released in between (an unregister, or a fault on the first holder's node): fine.
    released = Script().op(0, "register", "c", "n1", 0.0, 1.0, ("<n1.2.1>", 1))
    released.op(2, "unregister", "c", None, 1.5, 1.8).op(
        1, "register", "c", "n2", 2.0, 3.0, ("<n2.2.1>", 2)
    )
    assert (
        check_unique_owners(released.history(), views, [], "consistent").validity is Validity.VALID
    )
    kill = [{"fault": "kill", "targets": ["n1"], "start": 1.2, "stop": 4.0}]
    assert check_unique_owners(taken, views, kill, "consistent").validity is Validity.VALID
    # A fault that ended before the first registration releases nothing of it, unless its
    # aftermath (the failure detector declaring the node failed later) reaches that far.
    early = [{"fault": "partition", "targets": ["n1"], "start": -3.0, "stop": -1.0}]
    assert check_unique_owners(taken, views, early, "consistent").validity is Validity.INVALID
    late = check_unique_owners(taken, views, early, "consistent", aftermath=2.0)
    assert late.validity is Validity.VALID
    # The same process registering again is idempotent; eventual names may be claimed twice.
    again = Script().op(0, "register", "c", "n2", 0, 1, ("<n2.2.1>", 2))
    again.op(1, "register", "c", "n2", 2, 3, ("<n2.2.1>", 2))
    assert check_unique_owners(again.history(), views, [], "consistent").validity is Validity.VALID
    assert check_unique_owners(taken, views, [], "eventual").validity is Validity.VALID
    # A new owner after a release must hold a larger fencing token.
    stale = Script().op(0, "register", "c", "n1", 0.0, 1.0, ("<n1.2.1>", 5))
    stale.op(2, "unregister", "c", None, 1.5, 1.8).op(
        1, "register", "c", "n2", 2.0, 3.0, ("<n2.2.1>", 5)
    )
    r = check_unique_owners(stale.history(), views, [], "consistent")
    assert r.validity is Validity.INVALID
    assert r.witness["double_owners"][0]["problem"] == "the fencing token did not increase"


def test_pg_converged_catches_views_that_still_differ():
    truth = [["<n1.2.1>", "<n2.2.1>"]]
    ok = {
        "groups": ["g"],
        "views": {"n1": truth, "n2": truth},
        "truth": truth,
        "converged_after": 1.5,
        "within": 10,
    }
    assert check_pg_converged(ok).validity is Validity.VALID
    stuck = {**ok, "views": {"n1": truth, "n2": [["<n2.2.1>"]]}, "converged_after": None}
    r = check_pg_converged(stuck)
    assert r.validity is Validity.INVALID
    assert r.witness["diverged"][0]["views"]["n2"] == ["<n2.2.1>"]
    assert check_pg_converged({**ok, "views": {}}).validity is Validity.UNKNOWN


def test_calls_answered_catches_an_answer_to_another_call():
    good = Script().op(0, "call", "n1", 7, 0.0, 1.0, ("echo", "n1", 7))
    assert check_calls(good.history()).validity is Validity.VALID
    bad = Script().op(0, "call", "n1", 7, 0.0, 1.0, ("echo", "n1", 8))
    bad.op(1, "call", "n2", 9, 0.0, 1.0, None, "info")
    r = check_calls(bad.history())
    assert r.validity is Validity.INVALID and r.figures == {"answered": 1, "wrong": 1}
