"""The metrics and the admin summary of a node's contracts service, read from its statistics
(labels are outcomes, statuses and verdicts: a handful, never run ids or contract names)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..observability import Metric, counter, gauge

if TYPE_CHECKING:
    from ._service import ContractsService

__all__ = ["collect", "summary"]


def collect(service: ContractsService) -> Iterator[Metric]:
    """The metric families of a node's contracts, from its statistics (at scrape time)."""
    stats = service.statistics()
    yield counter(
        "ember_contracts_runs",
        "Runs of this node that ended, by how.",
        labels=["outcome"],
        samples=(
            ((k,), getattr(stats, f"runs_{k}"))
            for k in ("succeeded", "failed", "cancelled", "unknown")
        ),
    )
    yield counter("ember_contracts_runs_started", "Runs started on this node.", stats.runs_started)
    yield counter(
        "ember_contracts_runs_resumed",
        "Coordinators started from a record (after a wait, a restart or a takeover).",
        stats.runs_resumed,
    )
    yield gauge(
        "ember_contracts_local_runs",
        "This node's local runs, by status.",
        labels=["status"],
        samples=(((s,), n) for s, n in sorted(service.runs_by_status().items())),
    )
    yield gauge("ember_contracts_coordinators", "Coordinators running here.", stats.coordinators)
    yield counter(
        "ember_contracts_steps",
        "Step attempts started by this node's runs, by where they ran.",
        labels=["where"],
        samples=(
            (("inline",), stats.steps_inline),
            (("local",), stats.steps_local),
            (("remote",), stats.steps_remote),
        ),
    )
    yield service.step_seconds.family()
    yield counter(
        "ember_contracts_events",
        "Event deliveries made from this node, by verdict.",
        labels=["verdict"],
        samples=(
            (("delivered",), stats.events_delivered),
            (("again",), stats.events_again),
            (("duplicate",), stats.events_duplicate),
            (("unmatched",), stats.events_unmatched),
        ),
    )
    yield counter("ember_contracts_takeovers", "Runs this node gave a new owner.", stats.takeovers)
    yield counter(
        "ember_contracts_store_writes",
        "Writes to the durable store (and retries through leader changes).",
        labels=["kind"],
        samples=((("write",), stats.store_writes), (("retry",), stats.store_retries)),
    )
    yield counter(
        "ember_contracts_cache",
        "Lookups of pure step results, by outcome.",
        labels=["outcome"],
        samples=((("hit",), stats.cache_hits), (("miss",), stats.cache_misses)),
    )


def summary(service: ContractsService) -> dict[str, Any]:
    """A node's line of contracts on the dashboard and in ``ember status`` (which read
    ``coordinators`` and ``runs``), and its ``/api/v1/contracts`` view."""
    stats = service.statistics()
    failed = stats.runs_failed + stats.runs_unknown
    return {
        "coordinators": stats.coordinators,
        "started": stats.runs_started,
        "succeeded": stats.runs_succeeded,
        "failed": failed,
        "runs": {"succeeded": stats.runs_succeeded, "failed": failed, "parked": stats.runs_parked},
        "durable": service.cluster is not None,
        "step_p99_s": service.step_seconds.quantile(0.99),
    }
