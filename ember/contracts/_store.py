"""What is kept of every run: one :class:`RunStore` state machine, applied through Raft for
durable runs (the ``ember.contracts`` group) and in memory for a node's local runs, so both
kinds have one implementation of idempotent starts, correlation, event delivery with
duplicates and early events, fencing of owners, the audit trail and retention.

Commands are dicts (``"op"`` names the handler); every handler is deterministic: time comes in
the command (``"at"``), never from a clock. Handlers answer with plain lists, never raise for a
caller's mistake, so the answer is the same on every member and the caller raises the typed
error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..consensus import StateMachine, apply

__all__ = ["AUDIT_LIMIT", "FINAL", "RunStore", "correlation_key"]

AUDIT_LIMIT = 200
"""Event deliveries (accepted or not) kept per run, oldest dropped first."""

FINAL = frozenset(("succeeded", "failed", "cancelled"))
"""The statuses of a run that ended."""
_FINAL = FINAL


def correlation_key(correlation: Mapping[str, Any]) -> str:
    """The canonical form of a correlation (key order does not matter)."""
    return json.dumps(sorted(correlation.items()), default=repr, separators=(",", ":"))


class RunStore(StateMachine):
    """Runs by id, an index of unfinished runs by correlation, and the finished runs in the
    order they ended (the oldest beyond ``keep_finished`` are forgotten)."""

    def __init__(self, keep_finished: int = 10_000) -> None:
        super().__init__()
        self.state = {"runs": {}, "corr": {}, "active": {}, "finished": {}}
        self.keep_finished = keep_finished

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        runs: dict[str, dict[str, Any]] = self.state["runs"]
        return runs

    @apply("batch")
    def batch(self, cmd: dict[str, Any]) -> list[Any]:
        """Several commands in one entry (a node's coordinators' writes, batched): each
        answered as if written alone, in order."""
        out: list[Any] = []
        for command in cmd["commands"]:
            try:
                out.append(self.apply_command(command))
            except Exception as exc:  # the same on every member
                out.append(["error", type(exc).__name__, str(exc)])
        return out

    # --- starting ---

    @apply("start")
    def start(self, cmd: dict[str, Any]) -> list[Any]:
        """Create a run, or answer with the existing one of that id (``["exists", record]``);
        ``["conflict", why]`` when the id is taken by another contract or other inputs."""
        run_id = cmd["id"]
        rec = self.runs.get(run_id)
        if rec is not None:
            if (rec["contract"], rec["version"]) != (cmd["contract"], cmd["version"]):
                return [
                    "conflict",
                    f"it is a run of {rec['contract']} v{rec['version']}, "
                    f"not {cmd['contract']} v{cmd['version']}",
                ]
            if rec["inputs"] != cmd["inputs"]:
                return ["conflict", "it was started with other inputs"]
            return ["exists", rec]
        at = cmd["at"]
        rec = {
            "id": run_id,
            "contract": cmd["contract"],
            "version": cmd["version"],
            "ref": cmd.get("ref"),
            "shape": cmd["shape"],
            "inputs": cmd["inputs"],
            "corr": cmd.get("corr") or {},
            "awaits": cmd.get("awaits") or [],
            "status": "running",
            "reason": "starting",
            "waiting": [],
            "deadline": None,
            "owner": cmd["owner"],
            "epoch": 1,
            "created": at,
            "updated": at,
            "tasks": {},
            "events": {},
            "audit": [],
            "result": None,
            "error": None,
            "declined": [],
            "wake": None,
            "parent": cmd.get("parent"),
            "durable": bool(cmd.get("durable", True)),
        }
        self.runs[run_id] = rec
        self.state["active"][run_id] = 1
        if rec["corr"]:
            self.state["corr"].setdefault(correlation_key(rec["corr"]), []).append(run_id)
        return ["created", rec]

    # --- the owner's progress ---

    @apply("advance")
    def advance(self, cmd: dict[str, Any]) -> list[Any]:
        """The owner's facts since its last write: task fields, checkpoints and side effects,
        the run's state, its end. Refused (``["fenced", owner, epoch]``) from an owner whose
        claim was taken over; ``["gone", status]`` once the run ended."""
        rec = self.runs.get(cmd["id"])
        if rec is None:
            return ["gone", None]
        if rec["status"] in _FINAL:
            return ["gone", rec["status"]]
        if cmd["epoch"] != rec["epoch"]:
            return ["fenced", rec["owner"], rec["epoch"]]
        tasks = rec["tasks"]
        for key, fields in cmd.get("tasks", {}).items():
            task = tasks.get(key)
            if task is None:
                tasks[key] = dict(fields)
            else:
                task.update(fields)
        for kind, key, name, value in cmd.get("marks", ()):
            tasks.setdefault(key, {}).setdefault(kind, {})[name] = value
        at = cmd["at"]
        rec["updated"] = at
        state = cmd.get("state")
        if state is not None:
            rec["status"], rec["reason"], rec["waiting"], rec["deadline"] = state
            if rec["status"] == "unknown":
                rec["reason"] = rec["reason"] or "outcome unknown"
        if cmd.get("woke"):
            rec["wake"] = None
        end = cmd.get("end")
        if end is not None:
            self._end(rec, end[0], end[1], end[2], at)
        return ["ok"]

    def _end(self, rec: dict[str, Any], status: str, result: Any, error: Any, at: Any) -> None:
        rec["status"] = status
        rec["result"] = result
        rec["error"] = error
        rec["reason"] = "" if status == "succeeded" else (error or {}).get("type", status)
        rec["waiting"] = []
        rec["deadline"] = None
        rec["wake"] = None
        rec["ended"] = at
        self._unindex(rec)
        if status in _FINAL:
            finished: dict[str, int] = self.state["finished"]
            finished[rec["id"]] = 1
            while len(finished) > self.keep_finished:
                oldest = next(iter(finished))
                del finished[oldest]
                self.runs.pop(oldest, None)

    def _unindex(self, rec: dict[str, Any]) -> None:
        self.state["active"].pop(rec["id"], None)
        if rec["corr"]:
            key = correlation_key(rec["corr"])
            ids = self.state["corr"].get(key)
            if ids is not None and rec["id"] in ids:
                ids.remove(rec["id"])
                if not ids:
                    del self.state["corr"][key]

    @apply("claim")
    def claim(self, cmd: dict[str, Any]) -> list[Any]:
        """Make ``node`` the owner if the run is still at ``epoch`` (compare and set): the
        answer is ``["ok", record]`` with the new epoch, or ``["stale", owner, epoch]``."""
        rec = self.runs.get(cmd["id"])
        if rec is None or rec["status"] in _FINAL:
            return ["gone", None if rec is None else rec["status"]]
        if rec["epoch"] != cmd["epoch"]:
            return ["stale", rec["owner"], rec["epoch"]]
        rec["owner"] = cmd["node"]
        rec["epoch"] += 1
        rec["updated"] = cmd["at"]
        rec["reason"] = cmd.get("why") or f"taken over by {cmd['node']}"
        if rec["status"] == "unknown" and not rec.get("error"):
            rec["status"] = "running"
        return ["ok", rec]

    @apply("decline")
    def decline(self, cmd: dict[str, Any]) -> list[Any]:
        """``node`` cannot run this run (its version is not loaded there): recorded, and the
        run reported ``unknown`` with the reason until a node takes it."""
        rec = self.runs.get(cmd["id"])
        if rec is None or rec["status"] in _FINAL:
            return ["gone"]
        if cmd["node"] not in rec["declined"]:
            rec["declined"].append(cmd["node"])
        rec["status"] = "unknown"
        rec["reason"] = cmd["reason"]
        rec["updated"] = cmd["at"]
        return ["ok", rec["declined"]]

    @apply("retry_declined")
    def retry_declined(self, cmd: dict[str, Any]) -> list[Any]:
        """Forget which nodes declined the run, and wake its owner to try again."""
        rec = self.runs.get(cmd["id"])
        if rec is None or rec["status"] in _FINAL:
            return ["gone"]
        rec["declined"] = []
        rec["wake"] = cmd["at"]
        return ["ok"]

    # --- from outside ---

    @apply("event")
    def event(self, cmd: dict[str, Any]) -> list[Any]:
        """Deliver event ``event`` to the unfinished runs with correlation ``corr`` that await
        it (or to run ``run``). Each match is ``[run id, owner, epoch, status, verdict, kept
        event id]`` with verdict ``delivered``, ``again`` (this very delivery, by
        ``event_id``, was recorded before) or ``duplicate`` (another delivery of that event
        was); ``["none", why]`` when no run matched (nothing is recorded then)."""
        event, event_id, at = cmd["event"], cmd["event_id"], cmd["at"]
        if cmd.get("run") is not None:
            candidates = [cmd["run"]] if cmd["run"] in self.runs else []
        else:
            candidates = list(self.state["corr"].get(correlation_key(cmd["corr"]), ()))
        runs = [self.runs[r] for r in candidates]
        live = [r for r in runs if r["status"] not in _FINAL]
        matching = [r for r in live if event in r["awaits"]]
        if not matching:
            if not runs:
                why = "no unfinished run has this correlation"
            elif not live:
                why = "the run has finished"
            else:
                why = (
                    "its run does not await this event (it awaits "
                    + ", ".join(sorted({e for r in live for e in r["awaits"]}) or ["nothing"])
                    + ")"
                )
            return ["none", why]
        out = []
        for rec in matching:
            kept = rec["events"].get(event)
            if kept is None:
                verdict = "delivered"
                rec["events"][event] = {
                    "id": event_id,
                    "payload": cmd.get("payload"),
                    "at": at,
                    "from": cmd.get("from"),
                }
                if rec["status"] in ("waiting", "unknown") or rec.get("wake") is None:
                    rec["wake"] = at
            elif kept["id"] == event_id:
                verdict = "again"
            else:
                verdict = "duplicate"
            audit: list[Any] = rec["audit"]
            audit.append([at, event, event_id, verdict, cmd.get("from")])
            if len(audit) > AUDIT_LIMIT:
                del audit[0]
            rec["updated"] = at
            kept_id = event_id if kept is None else kept["id"]
            out.append([rec["id"], rec["owner"], rec["epoch"], rec["status"], verdict, kept_id])
        return ["matched", out]

    @apply("cancel")
    def cancel(self, cmd: dict[str, Any]) -> list[Any]:
        """End an unfinished run as cancelled at once; its owner, if it runs steps, learns at
        its next write (``gone``) and aborts them."""
        rec = self.runs.get(cmd["id"])
        if rec is None:
            return ["none"]
        if rec["status"] in _FINAL:
            return ["final", rec["status"]]
        error = {"type": "RunCancelled", "run_id": rec["id"], "reason": cmd["reason"]}
        self._end(rec, "cancelled", None, error, cmd["at"])
        return ["ok", rec["owner"]]

    # --- reads ---

    def read(self, key: Any) -> Any:
        """``["run", id]``: the run's record (None if unknown). ``["runs", contract, status,
        limit]``: summaries of runs, newest first. ``["active"]``: every unfinished run as
        ``[id, owner, epoch, status, wake, deadline, declined, contract, version]``."""
        kind = key[0]
        if kind == "run":
            return self.runs.get(key[1])
        if kind == "runs":
            _, contract, status, limit = key
            out = []
            for rec in reversed(self.runs.values()):
                if contract is not None and rec["contract"] != contract:
                    continue
                if status is not None and rec["status"] != status:
                    continue
                out.append(summary(rec))
                if len(out) >= limit:
                    break
            return out
        if kind == "active":
            runs = self.runs
            return [
                [
                    r,
                    runs[r]["owner"],
                    runs[r]["epoch"],
                    runs[r]["status"],
                    runs[r]["wake"],
                    runs[r]["deadline"],
                    runs[r]["declined"],
                    runs[r]["contract"],
                    runs[r]["version"],
                ]
                for r in self.state["active"]
            ]
        return None


def summary(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A run's record without its tasks, events and values (for listings)."""
    return {
        "id": rec["id"],
        "contract": rec["contract"],
        "version": rec["version"],
        "status": rec["status"],
        "reason": rec["reason"],
        "owner": rec["owner"],
        "corr": rec["corr"],
        "waiting": rec["waiting"],
        "created": rec["created"],
        "updated": rec["updated"],
        "durable": rec["durable"],
    }
