"""Exporting a node's metrics with OpenTelemetry (OTLP), from the same collectors that feed
``/metrics``.

Every ``interval`` the node takes one snapshot of its families on its own loop (collectors are
not thread-safe), then hands it to the OpenTelemetry SDK's reader in a worker thread, whose
observable instruments report the snapshot and whose exporter sends it (a blocking HTTP post
that must not run on the loop). Counters become observable counters (cumulative), gauges
observable gauges, and a histogram its ``_count`` and ``_sum`` (OpenTelemetry has no
observable histogram; the buckets stay on ``/metrics``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._checks import check_positive
from .._errors import UsageError
from ._metrics import Metric, Metrics

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

__all__ = ["MetricsExport", "MetricsExportConfig"]

log = logging.getLogger("ember.observability")


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricsExportConfig:
    """Push the node's metrics over OTLP (``Node(metrics_export=MetricsExportConfig(...))``).

    ``endpoint`` (``http://collector:4318/v1/metrics``) needs the ``otlp`` extra
    (``pip install 'ember[otlp]'``); ``reader`` is any OpenTelemetry SDK pull reader instead
    (a test's ``InMemoryMetricReader``). ``interval`` is the seconds between exports.
    """

    endpoint: str | None = None
    reader: MetricReader | None = None
    interval: float = 15.0
    service_name: str = "ember"

    def __post_init__(self) -> None:
        if (self.endpoint is None) == (self.reader is None):
            raise UsageError("metrics export needs an endpoint or a reader (one of them)")
        check_positive("interval", self.interval)


class MetricsExport:
    """The OTLP export of one node's :class:`Metrics` (see the module doc)."""

    def __init__(self, metrics: Metrics, config: MetricsExportConfig, node_name: str) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource

        self.metrics = metrics
        self.config = config
        self._reader = config.reader if config.reader is not None else _otlp_reader(config)
        resource = Resource.create(
            {"service.name": config.service_name, "service.instance.id": node_name}
        )
        self._provider = MeterProvider(metric_readers=[self._reader], resource=resource)
        self._meter = self._provider.get_meter("ember")
        self._snapshot: dict[str, list[tuple[dict[str, str], float]]] = {}
        self._instruments: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.exports = 0

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics export")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await asyncio.to_thread(self._provider.shutdown)

    async def export_now(self) -> None:
        """Snapshot the families here, on the loop, and export them from a worker thread."""
        self._take(self.metrics.collect())
        await asyncio.to_thread(self._reader.collect)
        self.exports += 1

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            try:
                await self.export_now()
            except Exception:
                log.exception("metrics export failed")

    def _take(self, families: Iterable[Metric]) -> None:
        snapshot: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in families:
            for sample in family.samples:
                name = sample.name
                if family.type == "histogram":
                    if not name.endswith(("_count", "_sum")):
                        continue
                    kind = "counter"
                elif family.type == "counter":
                    if not name.endswith("_total"):
                        continue  # _created samples
                    name, kind = name[: -len("_total")], "counter"
                else:
                    kind = "gauge"
                snapshot.setdefault(name, []).append((dict(sample.labels), float(sample.value)))
                if name not in self._instruments:
                    self._instrument(name, kind, family.documentation)
        self._snapshot = snapshot

    def _instrument(self, name: str, kind: str, doc: str) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(v, labels) for labels, v in self._snapshot.get(name, ())]

        if kind == "counter":
            self._meter.create_observable_counter(name, callbacks=[observe], description=doc)
        else:
            self._meter.create_observable_gauge(name, callbacks=[observe], description=doc)
        self._instruments.add(name)


def _otlp_reader(config: MetricsExportConfig) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[import-not-found, unused-ignore]
            OTLPMetricExporter,
        )
    except ImportError as exc:
        raise UsageError("an OTLP endpoint needs the exporter: pip install 'ember[otlp]'") from exc
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    # The reader's own timer never fires (export_now drives it from the loop's snapshots).
    return PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=config.endpoint), export_interval_millis=float("inf")
    )
