"""Checkers: pure functions of a run's history and observations, each giving a verdict.

A :class:`CheckResult` is ``valid``, ``invalid`` or ``unknown`` (Jepsen's three; a run exits
0, 1 or 2 by the worst of them), with a one-line summary, JSON-able figures and, when invalid,
a witness to show in the report.
"""

from __future__ import annotations

import enum
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..testing import UNKNOWN, KVModel, Operation, Verdict, Witness, check_linearizability
from ._history import Event, History, kv_operations

__all__ = [
    "CheckResult",
    "Validity",
    "check_availability",
    "check_calls",
    "check_contracts",
    "check_linearizable",
    "check_logs",
    "check_lost_writes",
    "check_pg_converged",
    "check_rss",
    "check_supervisors",
    "check_unique_owners",
    "expected_order_result",
    "missing_children",
    "overall",
    "payment_of",
]

# How many operations a witness lists at most, so a report stays small.
_WITNESS_OPS = 40


class Validity(enum.Enum):
    """A checker's verdict: Jepsen's valid / invalid / unknown."""

    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        """0 valid, 1 invalid, 2 unknown (``ember chaos run``'s exit status)."""
        return {"valid": 0, "invalid": 1, "unknown": 2}[self.value]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One checker's verdict, a one-line summary, figures and (when invalid) a witness."""

    name: str
    validity: Validity
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    witness: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "validity": self.validity.value,
            "summary": self.summary,
            "figures": self.figures,
        }
        if self.witness is not None:
            out["witness"] = self.witness
        return out


def overall(results: Iterable[CheckResult]) -> Validity:
    """Invalid if any check is, else unknown if any is, else valid."""
    seen = {r.validity for r in results}
    for v in (Validity.INVALID, Validity.UNKNOWN):
        if v in seen:
            return v
    return Validity.VALID


def _op_row(op: Operation, model: KVModel) -> dict[str, Any]:
    return {
        "index": op.id,
        "process": op.client,
        "op": model.describe(op.input, UNKNOWN if op.end is None else op.output),
        "start": round(op.start, 6),
        "end": None if op.end is None else round(op.end, 6),
    }


def _witness_dict(w: Witness, model: KVModel) -> dict[str, Any]:
    return {
        "key": w.key,
        "failing": _op_row(w.failing, model),
        "window": [_op_row(op, model) for op in list(w.window)[-_WITNESS_OPS:]],
        "linearized_tail": [_op_row(op, model) for op in w.linearized[-10:]],
        "linearized_count": len(w.linearized),
        "state": w.state,
    }


def check_linearizable(history: History, budget: float | None = 60.0) -> CheckResult:
    """The KV operations are linearizable, key by key (Porcupine's search, within ``budget``
    seconds); on a violation the witness is the window around the first failing operation."""
    ops = kv_operations(history)
    model = KVModel()
    result = check_linearizability(ops, model, budget=budget)
    illegal = [p for p in result.partitions if p.verdict is Verdict.ILLEGAL]
    undecided = [p for p in result.partitions if p.verdict is Verdict.UNKNOWN]
    figures = {
        "operations": len(ops),
        "unknown_outcomes": sum(1 for op in ops if op.end is None),
        "keys": len(result.partitions),
        "illegal_keys": len(illegal),
        "undecided_keys": len(undecided),
        "steps": result.steps,
        "elapsed_s": round(result.elapsed, 3),
    }
    if result.verdict is Verdict.OK:
        return CheckResult(
            "linearizable",
            Validity.VALID,
            f"{len(ops)} operations on {len(result.partitions)} keys are linearizable",
            figures,
        )
    if result.verdict is Verdict.UNKNOWN:
        return CheckResult(
            "linearizable",
            Validity.UNKNOWN,
            f"{len(undecided)} of {len(result.partitions)} keys undecided within {budget} s",
            figures,
        )
    w = result.witness
    assert w is not None
    return CheckResult(
        "linearizable",
        Validity.INVALID,
        f"key {w.key!r}: no linearization explains "
        f"{model.describe(w.failing.input, w.failing.output)} (operation {w.failing.id})",
        figures,
        _witness_dict(w, model),
    )


def _writes(history: History) -> dict[Any, list[tuple[Event, Event | None]]]:
    """Per key, the writes and cas that may have happened (not ``fail``), with completions."""
    out: dict[Any, list[tuple[Event, Event | None]]] = {}
    for invoke, done in history.pairs():
        if invoke.f not in ("write", "cas") or (done is not None and done.type == "fail"):
            continue
        if invoke.f == "cas" and done is not None and done.type == "ok" and not done.value:
            continue  # a cas that did not swap wrote nothing
        out.setdefault(invoke.key, []).append((invoke, done))
    return out


def _written(invoke: Event) -> Any:
    return invoke.value if invoke.f == "write" else invoke.value[1]


def check_lost_writes(history: History) -> CheckResult:
    """No acknowledged write is lost: each key's final read (after the final heal) returns a
    value whose write no acknowledged write follows in real time.

    A write is acknowledged when it (or a cas that swapped) completed ``ok``. If a key's final
    value was written by an operation that completed at ``t``, every acknowledged write of that
    key invoked after ``t`` is lost (it must have been ordered after the final value's write);
    a final read of nothing loses every acknowledged write. Keys with acknowledged writes but
    no successful final read make the verdict unknown.
    """
    finals: dict[Any, Event] = {}
    for invoke, done in history.pairs():
        if invoke.f == "final_read" and done is not None and done.type == "ok":
            finals[invoke.key] = done
    lost: list[dict[str, Any]] = []
    acknowledged = 0
    unread: list[Any] = []
    for key, writes in _writes(history).items():
        acked = [(i, d) for i, d in writes if d is not None and d.type == "ok"]
        acknowledged += len(acked)
        final = finals.get(key)
        if final is None:
            if acked:
                unread.append(key)
            continue
        writers = [(i, d) for i, d in writes if _written(i) == final.value]
        if writers:
            ends = [
                d.time if d is not None and d.type == "ok" else float("inf") for _, d in writers
            ]
            settled = max(ends)
        else:
            settled = float("-inf")  # nothing wrote the final value: every acked write is lost
        for invoke, done in acked:
            if invoke.time > settled:
                lost.append(
                    {
                        "key": key,
                        "index": invoke.index,
                        "process": invoke.process,
                        "value": _written(invoke),
                        "acknowledged_at": round(done.time, 6) if done else None,
                        "final_value": final.value,
                    }
                )
    figures = {
        "acknowledged": acknowledged,
        "lost": len(lost),
        "keys_read": len(finals),
        "keys_unread": len(unread),
    }
    if lost:
        return CheckResult(
            "no_lost_writes",
            Validity.INVALID,
            f"{len(lost)} of {acknowledged} acknowledged writes lost "
            f"(first: {lost[0]['value']!r} on key {lost[0]['key']!r})",
            figures,
            {"lost": lost[:_WITNESS_OPS]},
        )
    if unread:
        return CheckResult(
            "no_lost_writes",
            Validity.UNKNOWN,
            f"{len(unread)} keys with acknowledged writes had no successful final read",
            figures,
            None,
        )
    return CheckResult(
        "no_lost_writes",
        Validity.VALID,
        f"all {acknowledged} acknowledged writes survive in the final reads",
        figures,
    )


def check_availability(
    history: History, start: float, end: float, max_gap: float | None = None
) -> CheckResult:
    """The longest window of the workload phase (``start`` to ``end``) without a successful
    write; invalid if ``max_gap`` is given and exceeded."""
    times = sorted(
        done.time
        for invoke, done in history.pairs()
        if invoke.f in ("write", "cas") and done is not None and done.type == "ok"
    )
    marks = [start, *(t for t in times if start <= t <= end), end]
    gap, at = max(((b - a, a) for a, b in itertools.pairwise(marks)), default=(0.0, start))
    span = max(end - start, 1e-9)
    figures = {
        "ok_writes": len(times),
        "writes_per_s": round(len(times) / span, 2),
        "longest_gap_s": round(gap, 3),
        "longest_gap_from": round(at, 3),
        "max_gap_s": max_gap,
    }
    text = f"longest window without a successful write: {gap:.2f} s (from t={at:.2f} s)"
    if max_gap is not None and gap > max_gap:
        return CheckResult("availability", Validity.INVALID, f"{text} > {max_gap} s", figures)
    return CheckResult("availability", Validity.VALID, text, figures)


def check_rss(samples: Mapping[str, Sequence[tuple[float, int]]], limit_mb: float) -> CheckResult:
    """Every node's resident memory (sampled as ``(time, bytes)``) stays under ``limit_mb``."""
    peaks = {node: max((b for _, b in s), default=0) for node, s in samples.items()}
    figures = {
        "peak_mb": {n: round(b / 2**20, 1) for n, b in sorted(peaks.items())},
        "limit_mb": limit_mb,
    }
    if not any(samples.values()):
        return CheckResult("bounded_rss", Validity.UNKNOWN, "no memory samples", figures)
    over = {n: b for n, b in peaks.items() if b > limit_mb * 2**20}
    if over:
        worst = max(over, key=lambda n: over[n])
        return CheckResult(
            "bounded_rss",
            Validity.INVALID,
            f"node {worst} reached {over[worst] / 2**20:.1f} MB > {limit_mb} MB",
            figures,
            {"over": {n: round(b / 2**20, 1) for n, b in over.items()}},
        )
    top = max(peaks.values()) / 2**20
    return CheckResult(
        "bounded_rss", Validity.VALID, f"peak RSS {top:.1f} MB <= {limit_mb} MB", figures
    )


_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")


def _log_problem(line: str) -> str | None:
    """What is wrong with one log line (a JSON record or plain text), if anything."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict):
        if record.get("exc"):
            return "traceback"
        if str(record.get("level", "")).lower() == "critical":
            return "critical"
        return None
    if _TRACEBACK.search(line):
        return "traceback"
    return "critical" if line.startswith("CRITICAL") else None


def check_logs(logs: Mapping[str, Iterable[str]], allow: Sequence[str] = ()) -> CheckResult:
    """No node logged a traceback or a critical record, except lines matching an ``allow``
    pattern (regular expressions)."""
    allowed = [re.compile(p) for p in allow]
    found: list[dict[str, Any]] = []
    lines = accepted = 0
    for node, node_lines in sorted(logs.items()):
        for n, line in enumerate(node_lines, start=1):
            lines += 1
            problem = _log_problem(line)
            if problem and any(a.search(line) for a in allowed):
                accepted += 1
            elif problem:
                found.append({"node": node, "line": n, "problem": problem, "text": line[:2000]})
    figures = {"lines": lines, "problems": len(found), "accepted": accepted, "nodes": len(logs)}
    if found:
        first = found[0]
        return CheckResult(
            "clean_logs",
            Validity.INVALID,
            f"{len(found)} tracebacks or critical records in node logs "
            f"(first: {first['node']} line {first['line']})",
            figures,
            {"problems": found[:10]},
        )
    return CheckResult(
        "clean_logs",
        Validity.VALID,
        f"no tracebacks in {lines} log lines of {len(logs)} nodes"
        + (f" ({accepted} expected ones accepted)" if accepted else ""),
        figures,
    )


def _node_of(pid_text: str) -> str:
    """The node of a pid as ``str(pid)`` shows it (``<node.id.creation>``-like text)."""
    return pid_text.strip("<>").split(".")[0].split("@")[-1]


def check_unique_owners(
    history: History,
    views: Mapping[str, Mapping[str, str | None]],
    faults: Sequence[Mapping[str, Any]],
    tier: str,
    aftermath: float = 0.0,
    *,
    converged_after: float | None = None,
    within: float | None = None,
) -> CheckResult:
    """Every name has at most one owner: after the final heal, every node sees the same holder
    (or none) under each name (``views``: the last ones polled, ``converged_after`` seconds
    after the heal when they agreed, None if not within ``within``); and, for consistent
    names, no two processes held a name at once: a successful registration of a name another
    process holds must follow a release of it (an unregister, or a fault on the holder's node
    that releases its names), and carry a larger fencing token. A fault's releases may trail
    it by ``aftermath`` seconds (the failure detector declares a node failed, and its names are
    released, after the fault that cut it off may already have ended).
    """
    split: list[dict[str, Any]] = []
    names = sorted({n for view in views.values() for n in view}, key=str)
    for name in names:
        owners = {node: view.get(name) for node, view in views.items()}
        if len(set(owners.values())) > 1:
            split.append({"name": name, "owners": owners})
    doubles: list[dict[str, Any]] = []
    if tier == "consistent":
        doubles = _double_owners(history, faults, set(names), aftermath)
    figures = {
        "tier": tier,
        "names": len(names),
        "nodes": len(views),
        "diverged_names": len(split),
        "double_owners": len(doubles),
        "converged_after_s": converged_after,
        "within_s": within,
        "registrations": sum(
            1
            for i, d in history.pairs()
            if i.f == "register" and i.key in names and d is not None and d.type == "ok"
        ),
    }
    if not views:
        return CheckResult(f"unique_{tier}_names", Validity.UNKNOWN, "no node answered", figures)
    if split or doubles:
        first = split[0]["name"] if split else doubles[0]["name"]
        when = "after settling" if within is None else f"{within:g} s after the heal"
        return CheckResult(
            f"unique_{tier}_names",
            Validity.INVALID,
            f"{len(split)} names seen with different owners {when}, {len(doubles)} held by "
            f"two processes at once (first: {first!r})",
            figures,
            {"diverged": split[:_WITNESS_OPS], "double_owners": doubles[:_WITNESS_OPS]},
        )
    return CheckResult(
        f"unique_{tier}_names",
        Validity.VALID,
        f"{len(names)} {tier} names: one owner each on all {len(views)} nodes"
        + ("" if converged_after is None else f" ({converged_after:g} s after the heal)"),
        figures,
    )


def _double_owners(
    history: History, faults: Sequence[Mapping[str, Any]], names: set[Any], aftermath: float
) -> list[dict[str, Any]]:
    regs: dict[Any, list[tuple[Event, Event]]] = {}
    releases: dict[Any, list[tuple[float, float]]] = {}
    for invoke, done in history.pairs():
        if invoke.key not in names:
            continue
        if invoke.f == "register" and done is not None and done.type == "ok":
            regs.setdefault(invoke.key, []).append((invoke, done))
        elif invoke.f == "unregister" and (done is None or done.type != "fail"):
            end = done.time if done is not None else float("inf")
            releases.setdefault(invoke.key, []).append((invoke.time, end))
    out: list[dict[str, Any]] = []
    for name, rows in regs.items():
        rows.sort(key=lambda r: r[1].time)
        for (inv_a, done_a), (inv_b, done_b) in itertools.pairwise(rows):
            holder_a, holder_b = done_a.value[0], done_b.value[0]
            if holder_a == holder_b:
                continue  # registering the same process again is idempotent
            lo, hi = inv_a.time, done_b.time
            released = any(s <= hi and e >= lo for s, e in releases.get(name, ()))
            node = _node_of(holder_a)
            faulted = any(
                node in f["targets"] or f["fault"] == "partition"
                for f in faults
                if f["start"] <= hi and (f["stop"] is None or f["stop"] + aftermath >= lo)
            )
            token_a, token_b = done_a.value[1], done_b.value[1]
            if token_a is not None and token_b is not None and token_b <= token_a:
                out.append(
                    {
                        "name": name,
                        "problem": "the fencing token did not increase",
                        "first": {"index": inv_a.index, "holder": holder_a, "token": token_a},
                        "second": {"index": inv_b.index, "holder": holder_b, "token": token_b},
                    }
                )
            elif not released and not faulted:
                out.append(
                    {
                        "name": name,
                        "first": {
                            "index": inv_a.index,
                            "holder": holder_a,
                            "at": round(done_a.time, 6),
                        },
                        "second": {
                            "index": inv_b.index,
                            "holder": holder_b,
                            "at": round(done_b.time, 6),
                        },
                    }
                )
    return out


def check_pg_converged(observed: Mapping[str, Any]) -> CheckResult:
    """Every node's view of every group equals the union of the members each node holds
    locally, within the stated bound after the heal (``observed`` from the pg workload)."""
    views: Mapping[str, list[list[str]]] = observed["views"]
    truth: list[list[str]] = observed["truth"]
    after = observed["converged_after"]
    figures = {
        "groups": len(observed["groups"]),
        "nodes": len(views),
        "members": sum(len(t) for t in truth),
        "converged_after_s": after,
        "within_s": observed["within"],
    }
    if not views:
        return CheckResult("pg_converged", Validity.UNKNOWN, "no node answered", figures)
    if after is None:
        diverged = [
            {"group": g, "truth": truth[i], "views": {n: v[i] for n, v in views.items()}}
            for i, g in enumerate(observed["groups"])
            if any(v[i] != truth[i] for v in views.values())
        ]
        return CheckResult(
            "pg_converged",
            Validity.INVALID,
            f"{len(diverged)} groups still differ between nodes {observed['within']} s after "
            f"the heal (first: {diverged[0]['group']!r})"
            if diverged
            else "views never agreed",
            figures,
            {"diverged": diverged[:_WITNESS_OPS]},
        )
    return CheckResult(
        "pg_converged",
        Validity.VALID,
        f"{len(observed['groups'])} groups equal on all {len(views)} nodes {after:.2f} s after "
        "the heal",
        figures,
    )


def check_calls(history: History) -> CheckResult:
    """Every successful call got its own answer: the value it sent, from the node it called."""
    wrong: list[dict[str, Any]] = []
    answered = 0
    for invoke, done in history.pairs():
        if invoke.f != "call" or done is None or done.type != "ok":
            continue
        answered += 1
        if tuple(done.value) != ("echo", invoke.key, invoke.value):
            wrong.append(
                {"index": invoke.index, "sent": invoke.value, "to": invoke.key, "got": done.value}
            )
    figures = {"answered": answered, "wrong": len(wrong)}
    if wrong:
        return CheckResult(
            "calls_answered",
            Validity.INVALID,
            f"{len(wrong)} of {answered} calls got another call's answer",
            figures,
            {"wrong": wrong[:_WITNESS_OPS]},
        )
    return CheckResult(
        "calls_answered", Validity.VALID, f"all {answered} answers were their own", figures
    )


def missing_children(tree: Mapping[str, Any], expected: Mapping[str, Sequence[str]]) -> list[str]:
    """The paths of the ``expected`` children (per supervisor: ``""`` the top, ``"sub"`` the
    nested one) that a tree's snapshot does not show running; ``["*"]`` when the tree did not
    answer."""
    if "error" in tree:
        return ["*"]
    out: list[str] = []
    for level, ids in expected.items():
        running = {cid for cid, pid in tree.get(level, ()) if pid is not None}
        out += [f"{level}/{c}" if level else c for c in ids if c not in running]
    return out


# Faults that end a node's processes, and which end of the fault does it (a failing disk is
# replaced by restarting the node when the fault is undone; an added node is retired then).
_ENDS_PROCESSES = {"kill": "start", "restart": "start", "failing-disk": "stop", "add-node": "stop"}


def _lost_trees(history: History, faults: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Trees found gone (a request answered ``NoProc``) with no fault that ended their node's
    processes between their start and that answer."""
    started: dict[Any, list[tuple[float, Event]]] = {}
    for invoke, done in history.pairs():
        if invoke.f == "start_tree" and done is not None and done.type == "ok":
            started.setdefault(invoke.key, []).append((done.time, invoke))
    out: list[dict[str, Any]] = []
    for invoke, done in history.pairs():
        if invoke.f not in ("crash", "kill", "count") or done is None or done.error != "NoProc":
            continue
        node = invoke.key
        before = [inv for t, inv in started.get(node, ()) if t <= invoke.time]
        if not before:
            continue  # no tree was started there yet (a node added during the run)
        since = before[-1].time
        explained = any(
            node in f["targets"]
            and (at := f.get(_ENDS_PROCESSES.get(f["fault"], ""))) is not None
            and since <= at <= done.time
            for f in faults
        )
        if not explained:
            out.append(
                {
                    "node": node,
                    "tree_started_at": round(since, 6),
                    "found_gone_at": round(done.time, 6),
                    "index": invoke.index,
                }
            )
    return out


def check_supervisors(
    history: History, observed: Mapping[str, Any], faults: Sequence[Mapping[str, Any]]
) -> CheckResult:
    """Supervisor trees back to full strength: after the final heal (within the stated
    bound), every live node's tree runs every child it was started with, nested supervisors'
    children included; and no tree vanished during the run unless a fault ended its node's
    processes (a supervisor that gave up, or died with its node's connection, is a finding).
    ``observed`` comes from the supervisors workload; nodes that did not answer are listed,
    not judged (none answered: unknown)."""
    expected = observed["expected"]
    trees: Mapping[str, Mapping[str, Any]] = observed["trees"]
    # A tree that is not there answers NoProc and is judged; a node that did not answer is not.
    answered = {n: t for n, t in trees.items() if t.get("error") in (None, "NoProc")}
    short = {n: m for n, t in answered.items() if (m := missing_children(t, expected))}
    lost = _lost_trees(history, faults)
    ok = {"crash": 0, "kill": 0, "start_tree": 0}
    for invoke, done in history.pairs():
        if invoke.f in ok and done is not None and done.type == "ok":
            ok[invoke.f] += 1
    figures = {
        "nodes": len(trees),
        "answered": len(answered),
        "crashes": ok["crash"],
        "kills": ok["kill"],
        "trees_started": ok["start_tree"],
        "short_trees": len(short),
        "lost_trees": len(lost),
        "full_after_s": observed["full_after"],
        "within_s": observed["within"],
    }
    if not answered:
        return CheckResult("supervisors_full", Validity.UNKNOWN, "no node's tree answered", figures)
    if short or lost:
        parts = []
        if short:
            node = sorted(short)[0]
            parts.append(
                f"{len(short)} trees short {observed['within']} s after the heal "
                f"(first: {node} misses {', '.join(short[node])})"
            )
        if lost:
            parts.append(
                f"{len(lost)} trees vanished without a fault on their node "
                f"(first: {lost[0]['node']} at t={lost[0]['found_gone_at']:.2f} s)"
            )
        return CheckResult(
            "supervisors_full",
            Validity.INVALID,
            "; ".join(parts),
            figures,
            {
                "short": {n: {"missing": m, "tree": dict(answered[n])} for n, m in short.items()},
                "lost": lost[:_WITNESS_OPS],
            },
        )
    after = observed["full_after"]
    return CheckResult(
        "supervisors_full",
        Validity.VALID,
        f"{len(answered)} trees at full strength {after:.2f} s after the heal "
        f"({ok['crash']} crashes, {ok['kill']} kills restarted)",
        figures,
    )


def payment_of(run_id: str) -> str:
    """The ``paid`` event's payload the contracts workload delivers to run ``run_id``."""
    return f"pay-{run_id}"


def expected_order_result(order: str, amount: int, payment: Any) -> dict[str, Any]:
    """The outputs a run of the chaos ``ChaosOrder`` contract must end with: the model the
    contracts checker holds the runs to."""
    return {"charge": f"charged {order}:{amount * 3} with {payment}"}


_NOT_IDEMPOTENT = ("charge",)
"""The ``ChaosOrder`` steps that must run at most once per run."""


def _overlaps(faults: Sequence[Mapping[str, Any]], start: float, end: float) -> bool:
    return any(f["start"] <= end and (f["stop"] is None or f["stop"] >= start) for f in faults)


def _judge_run(
    run: str,
    start: Event,
    acked: bool,
    ending: Event | None,
    ledger: Event | None,
    *,
    faults: Sequence[Mapping[str, Any]],
) -> tuple[str, str]:
    """One run's verdict, ``(kind, why)``: kind ``ok``, ``unknown_outcome`` (documented),
    ``never_started``, ``undecided``, or a violation (``lost``, ``pending``, ``failed``,
    ``wrong_result``, ``twice``, ``stray``)."""
    counts: dict[str, int] = {}
    if ledger is not None and ledger.type == "ok":
        for row in ledger.value or ():
            counts[row[0]] = counts.get(row[0], 0) + 1
    twice = [s for s in _NOT_IDEMPOTENT if counts.get(s, 0) > 1]
    if twice:
        return "twice", f"step {twice[0]} ran {counts[twice[0]]} times (not idempotent)"
    if ending is None or ending.type == "info":
        return "undecided", "no store answered for it after the heal"
    if ending.type == "fail":  # RunNotFound
        if acked:
            return "lost", "acknowledged, but no store has it after the heal"
        if counts:
            return "stray", f"no store has it, yet its steps ran ({counts})"
        return "never_started", ""
    end = ending.value
    status, reason, error = end["status"], end.get("reason", ""), end.get("error")
    if status == "succeeded":
        inputs = end.get("inputs") or {}
        want = expected_order_result(
            run, inputs.get("amount", start.value["amount"]), payment_of(run)
        )
        if end.get("result") != want or inputs.get("amount") != start.value["amount"]:
            return "wrong_result", f"ended with {end.get('result')!r}, not {want!r}"
        if ledger is None or ledger.type != "ok":
            return "undecided", "its ledger could not be read"
        if counts.get("charge", 0) != 1:
            return "twice", f"succeeded with charge noted {counts.get('charge', 0)} times"
        return "ok", ""
    if status == "unknown" and error == "StepOutcomeUnknown":
        if _overlaps(faults, start.time, ending.time):
            return "unknown_outcome", reason
        return "failed", f"ended unknown with no fault during the run: {reason}"
    if status in ("running", "waiting"):
        return "pending", f"still {status} after the heal: {reason or 'no reason given'}"
    return "failed", f"ended {status} ({error}): {reason}"


def check_contracts(history: History, faults: Sequence[Mapping[str, Any]]) -> CheckResult:
    """Every acknowledged contract run completes exactly once with the right result after
    the heal: it is in the store, it ended (none left running or waiting), it succeeded with
    the outputs its inputs and payment give, and its non-idempotent step ran once (the ledger
    of executions, noted by the steps in the KV group, shows it); an idempotent or pure step may
    have run again. A run may instead end ``unknown`` with ``StepOutcomeUnknown`` when a fault
    hit it while its non-idempotent step ran (the documented outcome: it is not run twice), and
    then that step ran at most once. A run whose start was not acknowledged may not exist; if it
    does it is held to the same rules. Runs no store answered for make the verdict unknown."""
    starts: dict[Any, tuple[Event, bool]] = {}
    endings: dict[Any, Event] = {}
    ledgers: dict[Any, Event] = {}
    for invoke, done in history.pairs():
        if invoke.f == "start":
            starts[invoke.key] = (invoke, done is not None and done.type == "ok")
        elif invoke.f == "final_result" and done is not None:
            endings[invoke.key] = done
        elif invoke.f == "ledger" and done is not None:
            ledgers[invoke.key] = done
    kinds: dict[str, int] = {}
    bad: list[dict[str, Any]] = []
    acked = 0
    reruns = 0
    for run, (start, ok) in starts.items():
        ending = endings.get(run)
        found = ending is not None and ending.type == "ok"
        acked += ok or found
        kind, why = _judge_run(run, start, ok, ending, ledgers.get(run), faults=faults)
        kinds[kind] = kinds.get(kind, 0) + 1
        ledger = ledgers.get(run)
        if ledger is not None and ledger.type == "ok":
            noted = [row[0] for row in ledger.value or ()]
            reruns += max(0, noted.count("reserve") - 1)
        if kind not in ("ok", "unknown_outcome", "never_started", "undecided"):
            bad.append({"run": run, "problem": kind, "why": why, "start": start.index})
    figures = {
        "runs": len(starts),
        "acknowledged": acked,
        "succeeded": kinds.get("ok", 0),
        "unknown_outcome": kinds.get("unknown_outcome", 0),
        "never_started": kinds.get("never_started", 0),
        "undecided": kinds.get("undecided", 0),
        "violations": len(bad),
        "idempotent_reruns": reruns,
        "by_kind": dict(sorted(kinds.items())),
    }
    if bad:
        first = bad[0]
        return CheckResult(
            "contracts_once",
            Validity.INVALID,
            f"{len(bad)} of {acked} acknowledged runs broke a rule "
            f"(first: {first['run']}: {first['why']})",
            figures,
            {"runs": bad[:_WITNESS_OPS]},
        )
    if kinds.get("undecided") or not starts:
        return CheckResult(
            "contracts_once",
            Validity.UNKNOWN,
            f"{kinds.get('undecided', 0)} runs could not be read after the heal"
            if starts
            else "no run was started",
            figures,
        )
    return CheckResult(
        "contracts_once",
        Validity.VALID,
        f"{kinds.get('ok', 0)} of {acked} acknowledged runs completed once with the right "
        f"result; {kinds.get('unknown_outcome', 0)} ended unknown under faults (documented); "
        f"{reruns} idempotent reruns",
        figures,
    )
