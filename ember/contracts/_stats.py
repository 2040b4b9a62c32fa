"""The counters of a node's contracts service (``node.contracts.statistics()``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["ContractsStatistics"]


@dataclass(slots=True)
class ContractsStatistics:
    """Counters of a node's contracts service (read by ``statistics()``)."""

    runs_started: int = 0
    runs_resumed: int = 0
    """Coordinators started from a record: after a wait, a restart, or a takeover."""
    runs_succeeded: int = 0
    runs_failed: int = 0
    runs_cancelled: int = 0
    runs_unknown: int = 0
    runs_parked: int = 0
    """Runs that went to wait for an event (their coordinator stopped)."""
    runs_abandoned: int = 0
    """Coordinators that stopped because their run was taken over or ended elsewhere."""
    coordinators: int = 0
    """Coordinators running on this node now."""
    steps_inline: int = 0
    steps_local: int = 0
    steps_remote: int = 0
    steps_pipelined: int = 0
    """Remote steps sent with the step before them, to start where it ran when it succeeds
    (counted in ``steps_remote`` too)."""
    step_attempts: int = 0
    """Step attempts that reported (inline ones excluded; their times are in ``step_seconds``)."""
    step_seconds_total: float = 0.0
    step_seconds_max: float = 0.0
    events_delivered: int = 0
    events_again: int = 0
    events_duplicate: int = 0
    events_unmatched: int = 0
    takeovers: int = 0
    """Runs this node (as the store leader's) gave to a new owner."""
    declined: int = 0
    """Runs this node could not resume (their contract version is not loaded here)."""
    store_writes: int = 0
    store_retries: int = 0
    store_write_seconds: float = 0.0
    """Time spent waiting for store writes (all of them, retries included)."""
    cache_hits: int = 0
    cache_misses: int = 0
    cache_evictions: int = 0
    cache_entries: int = 0

    def observe(self, seconds: float) -> None:
        """Count one step attempt that took ``seconds``."""
        self.step_attempts += 1
        self.step_seconds_total += seconds
        self.step_seconds_max = max(self.step_seconds_max, seconds)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
