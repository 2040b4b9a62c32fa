"""The per-node metrics registry, the cheap histogram and the kernel's metrics."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

import ember
from ember.observability import Histogram, Metrics, counter, gauge


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_histogram_buckets_sum_and_batches() -> None:
    h = Histogram("x_seconds", "doc", bounds=(0.1, 1.0))
    h.observe(0.05)
    h.observe(3.0, 2)  # two items of 1.5 s each
    h.observe(0.5)
    assert h.buckets() == [(0.1, 1), (1.0, 2), (float("inf"), 4)]
    assert (h.count, h.sum) == (4, 3.55)
    assert h.quantile(0.5) == 1.0 and Histogram("y", "d").quantile(0.5) is None
    merged = Histogram.merge(Histogram("x_seconds", "doc", bounds=(0.1, 1.0)), [h, h])
    assert merged.count == 8 and merged.buckets()[-1] == (float("inf"), 8)
    with pytest.raises(ember.UsageError):
        Histogram("z", "d", bounds=(1.0, 0.5))
    with pytest.raises(ember.UsageError):
        Histogram.merge(Histogram("z", "d"), [h])


def test_collectors_are_read_at_collection_and_failures_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    value = [1.0]
    remove = metrics.add("good", lambda: [gauge("t_value", "A value.", value[0])])

    def bad() -> list[object]:
        raise RuntimeError("boom")

    metrics.add("bad", bad)  # type: ignore[arg-type]
    with pytest.raises(ember.UsageError):
        metrics.add("good", lambda: [])
    assert metrics.scrapes == 0  # nothing is read until someone asks
    with caplog.at_level(logging.CRITICAL, "ember.observability"):
        value[0] = 7.0
        s = _samples(metrics)
    assert s[("t_value", ())] == 7.0
    assert s[("ember_metrics_collector_errors_total", (("collector", "bad"),))] == 1.0
    assert metrics.scrapes == 1
    remove()
    assert metrics.names() == ["bad"]


def test_families_helpers_label_samples() -> None:
    family = counter("x_things", "Things.", labels=["kind"], samples=[(("a",), 2), (("b",), 3)])
    assert [(s.name, s.labels, s.value) for s in family.samples] == [
        ("x_things_total", {"kind": "a"}, 2),
        ("x_things_total", {"kind": "b"}, 3),
    ]


class Crasher(ember.Actor):
    def receive(self, msg: object) -> None:
        raise ValueError(msg)


class Echo(ember.Actor):
    async def receive(self, msg: object) -> object:
        if msg is None:  # never taken: the await makes every call go through a worker
            await asyncio.sleep(0)
        return msg


async def test_kernel_metrics_count_exits_by_class_and_time_receives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with ember.Node("k") as node:
        pid = await node.spawn(Echo)
        for i in range(200):
            await node.call(pid, i)  # 200 slices of one message: one in 16 is timed
        crasher = await node.spawn(Crasher)
        exited = node.wait_exit(crasher)
        with caplog.at_level(logging.CRITICAL, "ember.actors"):
            node.send(crasher, "boom")
            await exited
        stopped = await node.spawn(Echo)
        node.exit(stopped, "kill")
        await node.wait_exit(stopped)
        s = _samples(node.metrics)
        assert s[("ember_processes_exited_total", (("reason", "error"),))] == 1
        assert s[("ember_processes_exited_total", (("reason", "killed"),))] == 1
        assert s[("ember_processes_crashed_total", ())] == 1
        assert s[("ember_messages_processed_total", ())] == 201
        # Sampled: some slices were timed, each message counted at its slice's mean.
        assert s[("ember_receive_duration_seconds_count", ())] == 200 // 16
        assert s[("ember_processes", ())] == len(node.processes())


async def test_mailbox_gauges_see_the_longest_queue() -> None:
    async with ember.Node("m") as node:
        pid = await node.spawn(Echo)
        for i in range(50):
            node.send(pid, i)  # queued: no worker has run yet
        s = _samples(node.metrics)
        assert s[("ember_mailbox_messages_max", ())] == 50
        assert s[("ember_mailbox_messages", ())] >= 50
        node.time_receives(None)  # no timer: nothing is timed
        await node.call(pid, "flush")
        assert _samples(node.metrics)[("ember_mailbox_messages", ())] == 0


async def test_metrics_export_reports_the_collectors_through_an_otel_reader() -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from ember.observability import MetricsExportConfig

    reader = InMemoryMetricReader()
    config = MetricsExportConfig(reader=reader, interval=3600)
    async with ember.Node("x", metrics_export=config) as node:
        pid = await node.spawn(Echo)
        for i in range(20):
            await node.call(pid, i)
        export = node.service("metrics_export")
        await export.export_now()
        data = reader.get_metrics_data()
        assert data is not None
        points = {
            m.name: [p.value for p in m.data.data_points]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        assert points["ember_messages_processed"] == [20]
        assert points["ember_processes"] == [len(node.processes())]
        assert points["ember_receive_duration_seconds_count"] == [1]  # 20 slices: one timed
        resource = data.resource_metrics[0].resource.attributes
        assert resource["service.instance.id"] == "x"
        assert "metrics_export" not in node.observables()
    with pytest.raises(ember.UsageError):
        MetricsExportConfig()
    with pytest.raises(ember.UsageError):
        MetricsExportConfig(reader=reader, interval=0)


async def test_an_otlp_endpoint_without_the_exporter_is_a_clear_usage_error() -> None:
    from ember.observability import MetricsExportConfig, TracingConfig

    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the OTLP exporter is installed here: nothing to refuse")
    node = ember.Node("y", metrics_export=MetricsExportConfig(endpoint="http://127.0.0.1:1/"))
    with pytest.raises(ember.UsageError, match=r"ember\[otlp\]"):
        await node.start()
    await node.stop()
    with pytest.raises(ember.UsageError, match=r"ember\[otlp\]"):
        ember.Node("z", tracing=TracingConfig(otlp_endpoint="http://127.0.0.1:1/"))
