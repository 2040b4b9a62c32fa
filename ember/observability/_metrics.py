"""One node's metrics: a registry the layers add collectors to, read at scrape time.

Collection happens when someone asks (a Prometheus scrape, ``ember status``, an OTLP export
tick): a collector reads the counters its layer already keeps and yields metric families, so
the hot path pays nothing for metrics nobody reads. The one measurement made on the hot path,
the receive duration, is sampled (see :meth:`ember.actors.Node.time_receives`) into a
:class:`Histogram`, whose ``observe`` is a bisect and two additions.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

from .._errors import UsageError

__all__ = [
    "Collector",
    "Histogram",
    "Metric",
    "Metrics",
    "counter",
    "gauge",
]

log = logging.getLogger("ember.observability")

Collector = Callable[[], Iterable[Metric]]
"""A function that reads its layer's counters and yields metric families (build them with
:func:`counter`, :func:`gauge` and :meth:`Histogram.family`). It is called at scrape time,
on the node's event loop; it must be quick and must not await or block."""

LATENCY_BUCKETS = (
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Default histogram bounds in seconds: 10 µs (a short receive) to 10 s (a stuck fsync)."""


def counter(
    name: str,
    doc: str,
    value: float | None = None,
    *,
    labels: Sequence[str] = (),
    samples: Iterable[tuple[Sequence[str], float]] = (),
) -> CounterMetricFamily:
    """A counter family named ``name`` (``_total`` is added on exposition): one unlabelled
    ``value``, or one sample per label values in ``samples``."""
    family = CounterMetricFamily(name, doc, value=value, labels=labels or None)
    for label_values, v in samples:
        family.add_metric(list(label_values), v)
    return family


def gauge(
    name: str,
    doc: str,
    value: float | None = None,
    *,
    labels: Sequence[str] = (),
    samples: Iterable[tuple[Sequence[str], float]] = (),
) -> GaugeMetricFamily:
    """A gauge family, as :func:`counter`."""
    family = GaugeMetricFamily(name, doc, value=value, labels=labels or None)
    for label_values, v in samples:
        family.add_metric(list(label_values), v)
    return family


class Histogram:
    """A histogram cheap enough to observe on a hot path: ``observe`` bisects the bounds and
    bumps one bucket (no lock: it is only touched from the node's loop). ``family()`` turns
    it into a Prometheus histogram at scrape time."""

    __slots__ = ("_bounds", "_counts", "doc", "name", "sum")

    def __init__(self, name: str, doc: str, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise UsageError(f"histogram bounds must be increasing and distinct: {bounds!r}")
        self.name = name
        self.doc = doc
        self._bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        """Record ``count`` observations that took ``value`` in all (a timed batch: each is
        counted at the batch's mean, and the sum stays exact)."""
        self._counts[bisect_left(self._bounds, value / count)] += count
        self.sum += value

    @property
    def count(self) -> int:
        """Observations recorded."""
        return sum(self._counts)

    @staticmethod
    def merge(into: Histogram, parts: Iterable[Histogram]) -> Histogram:
        """``into`` with the observations of ``parts`` (same bounds) added; returns ``into``."""
        for part in parts:
            if part._bounds != into._bounds:
                raise UsageError("cannot merge histograms with different bounds")
            for i, n in enumerate(part._counts):
                into._counts[i] += n
            into.sum += part.sum
        return into

    def buckets(self) -> list[tuple[float, int]]:
        """Cumulative ``(upper bound, count)`` pairs, the last bound being +Inf."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip((*self._bounds, float("inf")), self._counts, strict=True):
            total += n
            out.append((bound, total))
        return out

    def family(self) -> HistogramMetricFamily:
        """The histogram as a Prometheus metric family."""
        return HistogramMetricFamily(
            self.name,
            self.doc,
            buckets=[(_bound_label(b), n) for b, n in self.buckets()],
            sum_value=self.sum,
        )

    def quantile(self, q: float) -> float | None:
        """An estimate of the ``q`` quantile (the upper bound of its bucket), or None if empty."""
        if not self.count:
            return None
        rank = q * self.count
        for bound, n in self.buckets():
            if n >= rank:
                return bound
        return None  # pragma: no cover - the +Inf bucket holds everything


def _bound_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class Metrics:
    """The metrics of one node. Layers :meth:`add` collectors; :meth:`exposition` renders the
    Prometheus text format; :meth:`collect` gives the families (for OTLP and the JSON API).

    One :class:`~prometheus_client.CollectorRegistry` per node, so many nodes in one process
    never mix their series; nothing is registered in ``prometheus_client``'s global registry.
    """

    def __init__(self) -> None:
        self._collectors: dict[str, Collector] = {}
        self._errors: Counter[str] = Counter()
        self.registry = CollectorRegistry(auto_describe=False)
        """The node's own registry (hand it to other ``prometheus_client`` tools)."""
        self.registry.register(_Bridge(self))
        self.scrapes = 0
        """Times the collectors were read (a test checks an idle dashboard reads none)."""

    def add(self, name: str, collector: Collector) -> Callable[[], None]:
        """Read ``collector`` at every collection, under ``name`` (unique per node: a layer
        name such as ``"transport"`` or ``"raft"``). Returns a function that removes it."""
        if name in self._collectors:
            raise UsageError(f"a metrics collector named {name!r} is already added")
        self._collectors[name] = collector

        def remove() -> None:
            if self._collectors.get(name) is collector:
                del self._collectors[name]

        return remove

    def names(self) -> list[str]:
        """The names of the collectors added, in order."""
        return list(self._collectors)

    def collect(self) -> list[Metric]:
        """Every family of every collector. A collector that raises is logged and counted in
        ``ember_metrics_collector_errors_total``; the others are still read."""
        self.scrapes += 1
        out: list[Metric] = []
        for name, collector in list(self._collectors.items()):
            try:
                out.extend(collector())
            except Exception:
                self._errors[name] += 1
                log.exception("metrics collector %s failed", name)
        out.append(
            counter(
                "ember_metrics_collector_errors",
                "Collections in which a layer's metrics collector raised, by collector.",
                labels=["collector"],
                samples=(((n,), float(c)) for n, c in sorted(self._errors.items())),
            )
        )
        return out

    def exposition(self) -> bytes:
        """The Prometheus text format (version 0.0.4) of every metric of the node."""
        return generate_latest(self.registry)


class _Bridge:
    """Lets ``prometheus_client`` read a :class:`Metrics` as one of its collectors."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics.collect()
