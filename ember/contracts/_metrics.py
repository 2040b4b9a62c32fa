"""The contracts service's metrics and admin views, read from its statistics at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import HistogramMetricFamily

from ..observability import AdminRequest, AdminRoute, Collector, Metric, counter, gauge
from ._service import _LATENCY_BUCKETS, ContractsService

__all__ = ["ContractsProbe"]

_OUTCOMES = ("succeeded", "failed", "cancelled", "unknown", "parked", "abandoned")


class ContractsProbe:
    """What the node's metrics and admin API see of ``node.contracts``."""

    def __init__(self, service: ContractsService) -> None:
        self.service = service

    def collectors(self) -> Iterable[Collector]:
        return (self._collect,)

    def _collect(self) -> Iterator[Metric]:
        s = self.service.stats
        yield counter(
            "ember_contract_runs",
            "Contract runs that ended (or parked to wait for an event) here, by outcome.",
            labels=["outcome"],
            samples=(((o,), getattr(s, f"runs_{o}")) for o in _OUTCOMES),
        )
        yield counter(
            "ember_contract_runs_started",
            "Coordinators started: new runs, and runs resumed from their record.",
            labels=["how"],
            samples=((("new",), s.runs_started), (("resumed",), s.runs_resumed)),
        )
        yield gauge("ember_contract_coordinators", "Run coordinators on this node.", s.coordinators)
        yield counter(
            "ember_contract_steps",
            "Step attempts, by where they ran.",
            labels=["where"],
            samples=(
                (("inline",), s.steps_inline),
                (("local",), s.steps_local),
                (("remote",), s.steps_remote),
            ),
        )
        cumulative, total = [], 0
        for bound, n in zip((*_LATENCY_BUCKETS, float("inf")), s.step_latency, strict=True):
            total += n
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), total))
        yield HistogramMetricFamily(
            "ember_contract_step_duration_seconds",
            "Step attempts (inline ones excluded) by duration.",
            buckets=cumulative,
            sum_value=s.step_seconds_total,
        )
        yield counter(
            "ember_contract_events",
            "Events delivered to waiting runs, by result.",
            labels=["result"],
            samples=(
                (("delivered",), s.events_delivered),
                (("again",), s.events_again),
                (("duplicate",), s.events_duplicate),
                (("unmatched",), s.events_unmatched),
            ),
        )
        yield counter("ember_contract_takeovers", "Runs given to a new owner.", s.takeovers)
        yield counter(
            "ember_contract_declined", "Runs this node could not resume here.", s.declined
        )
        yield counter(
            "ember_contract_store_writes",
            "Run records written, and retried.",
            labels=["kind"],
            samples=((("write",), s.store_writes), (("retry",), s.store_retries)),
        )
        yield counter(
            "ember_contract_cache",
            "Step-result cache lookups and evictions.",
            labels=["result"],
            samples=(
                (("hit",), s.cache_hits),
                (("miss",), s.cache_misses),
                (("eviction",), s.cache_evictions),
            ),
        )

    def admin_summary(self) -> dict[str, Any]:
        s = self.service.stats
        return {
            "coordinators": s.coordinators,
            "runs": {o: getattr(s, f"runs_{o}") for o in ("started", *_OUTCOMES)},
        }

    def admin_routes(self) -> Iterable[AdminRoute]:
        return (AdminRoute("GET", "/statistics", self._statistics, "every contracts counter"),)

    async def _statistics(self, req: AdminRequest) -> Any:
        return self.service.stats.as_dict()
