"""What ``status(run_id)`` reports: a run's state, why, what it waits on, the events it was
delivered (an audit trail), and every step's status, attempts, timing and node."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ._core import error_of_record
from ._values import Failure

__all__ = ["EventRecord", "RunStatus", "RunSummary", "StepStatus"]


@dataclass(frozen=True, slots=True)
class StepStatus:
    """One task of a run (a step, or ``name[i]`` for item ``i`` of a collection)."""

    name: str
    status: str
    attempts: int = 0
    node: str | None = None
    started: float | None = None
    finished: float | None = None
    reason: str = ""
    error: str | None = None
    """``"Kind: message"`` of the last failed attempt, if any."""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One delivery of an event to a run, accepted (``delivered``), repeated (``again``: the same
    delivery id) or refused (``duplicate``)."""

    at: float
    event: str
    event_id: str
    verdict: str
    source: str | None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One line of ``runs()``."""

    run_id: str
    contract: str
    version: int
    status: str
    reason: str
    owner: str | None
    correlation: Mapping[str, Any]
    waiting_on: tuple[str, ...]
    created: float
    updated: float
    durable: bool

    @classmethod
    def of(cls, s: Mapping[str, Any]) -> RunSummary:
        return cls(
            s["id"],
            s["contract"],
            s["version"],
            s["status"],
            s["reason"],
            s["owner"],
            dict(s["corr"]),
            tuple(s["waiting"]),
            s["created"],
            s["updated"],
            s["durable"],
        )


@dataclass(frozen=True, slots=True)
class RunStatus:
    """Where a run stands. ``status`` is ``running``, ``waiting`` (for an event, holding no
    actor), ``succeeded``, ``failed``, ``cancelled`` or ``unknown`` (the outcome of a step is
    unknown, or no node can load its version); ``reason`` says why it is where it is."""

    run_id: str
    contract: str
    version: int
    status: str
    reason: str
    owner: str | None
    durable: bool
    correlation: Mapping[str, Any]
    waiting_on: tuple[str, ...]
    deadline: float | None
    created: float
    updated: float
    steps: Mapping[str, StepStatus]
    events: tuple[EventRecord, ...]
    result: Any = None
    error: Exception | None = None
    declined: tuple[str, ...] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled") or (
            self.status == "unknown" and self.error is not None
        )

    @classmethod
    def of(cls, rec: Mapping[str, Any]) -> RunStatus:
        """A status from a store record."""
        steps = {}
        for key, t in rec["tasks"].items():
            err = t.get("e")
            failure = Failure.from_list(err) if err else None
            steps[key] = StepStatus(
                name=key,
                status=t.get("s", "pending"),
                attempts=int(t.get("a", 0)),
                node=t.get("n"),
                started=t.get("t0"),
                finished=t.get("t1"),
                reason=t.get("why", ""),
                error=None if failure is None else f"{failure.kind}: {failure.message}",
            )
        events = tuple(EventRecord(*e) for e in rec["audit"])
        error = error_of_record(rec["error"]) if rec.get("error") else None
        return cls(
            run_id=rec["id"],
            contract=rec["contract"],
            version=rec["version"],
            status=rec["status"],
            reason=rec["reason"],
            owner=rec["owner"],
            durable=rec["durable"],
            correlation=dict(rec["corr"]),
            waiting_on=tuple(rec["waiting"]),
            deadline=rec["deadline"],
            created=rec["created"],
            updated=rec["updated"],
            steps=steps,
            events=events,
            result=rec["result"],
            error=error,
            declined=tuple(rec["declined"]),
            inputs=dict(rec["inputs"]),
        )

    def with_running_reason(self) -> RunStatus:
        """This status with the reason of a running run made from its steps (the record keeps
        one only for the other states)."""
        active = [
            s
            for s in self.steps.values()
            if s.status in ("ready", "placing", "running", "retrying")
        ]
        parts = [
            f"{s.name}: {s.reason or s.status + (f' on {s.node}' if s.node else '')}"
            for s in active[:3]
        ]
        if len(active) > 3:
            parts.append(f"{len(active) - 3} more")
        return dataclasses.replace(self, reason="; ".join(parts) or self.reason)

    def as_dict(self) -> dict[str, Any]:
        """The status as JSON-friendly data (``ember run show --json``)."""
        out = asdict(self)
        out["error"] = None if self.error is None else f"{type(self.error).__name__}: {self.error}"
        out["steps"] = {k: asdict(v) for k, v in self.steps.items()}
        return out

    def format(self) -> str:
        """A human-readable report (``ember run show``)."""
        lines = [
            f"run {self.run_id}  {self.contract} v{self.version}  {self.status}"
            + (f" ({self.reason})" if self.reason else ""),
            f"  owner {self.owner}  {'durable' if self.durable else 'local'}  "
            f"created {_when(self.created)}  updated {_when(self.updated)}",
        ]
        if self.correlation:
            corr = ", ".join(f"{k}={v!r}" for k, v in self.correlation.items())
            lines.append(f"  correlation {corr}")
        if self.waiting_on:
            until = f" until {_when(self.deadline)}" if self.deadline is not None else ""
            lines.append(f"  waiting on {', '.join(self.waiting_on)}{until}")
        if self.error is not None:
            lines.append(f"  error {type(self.error).__name__}: {self.error}")
        if self.declined:
            lines.append(f"  declined by {', '.join(self.declined)}")
        lines.append("  steps:")
        for s in self.steps.values():
            took = f" {s.duration * 1000:.1f} ms" if s.duration is not None else ""
            where = f" on {s.node}" if s.node else ""
            tries = f" x{s.attempts}" if s.attempts > 1 else ""
            extra = f"  {s.error}" if s.error else (f"  ({s.reason})" if s.reason else "")
            lines.append(f"    {s.name:<24} {s.status:<10}{tries}{where}{took}{extra}")
        if self.events:
            lines.append("  events:")
            for e in self.events:
                src = f" from {e.source}" if e.source else ""
                lines.append(f"    {_when(e.at)} {e.event} [{e.event_id}] {e.verdict}{src}")
        return "\n".join(lines)


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
