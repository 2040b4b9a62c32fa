"""OpenTelemetry spans across nodes: one trace from a to b to c over loopback TCP, with the
SDK's in-memory exporter on each node; sampling off by default; Raft proposals."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import ember
from ember.consensus import Cluster
from ember.contracts import Contract, Input, compute
from ember.observability import TracingConfig

pytestmark = pytest.mark.ember_realtime


class Leaf(ember.Actor):
    def receive(self, msg: Any) -> Any:
        if msg == "boom":
            raise ValueError("boom")
        return msg * 2


class Middle(ember.Actor):
    async def receive(self, msg: Any) -> Any:
        # The leaf's pid comes in the message, decoded off the wire: a pid object made on
        # another node of this process would reach it in-process, not through the network.
        leaf, n = msg
        return await ember.call(leaf, n) + 1


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@asynccontextmanager
async def _three(
    sample_ratio: float = 0.0, traced: bool = True
) -> AsyncIterator[tuple[list[ember.Node], list[InMemorySpanExporter], TracerProvider]]:
    """Nodes a, b, c on loopback, each with its own provider and in-memory exporter."""
    providers = [_provider() for _ in range(3)]
    async with AsyncExitStack() as stack:
        nodes: list[ember.Node] = []
        for name, (provider, _) in zip("abc", providers, strict=True):
            config = TracingConfig(provider=provider, sample_ratio=sample_ratio)
            connect = [f"{n.name}@{n.address}" for n in nodes if n.address]
            node = ember.Node(
                name,
                listen="127.0.0.1:0",
                cookie="trace",
                connect=connect,
                tracing=config if traced else None,
            )
            nodes.append(await stack.enter_async_context(node))
        yield nodes, [e for _, e in providers], providers[0][0]


def _by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_one_trace_spans_three_nodes(caplog: pytest.LogCaptureFixture) -> None:
    async with _three() as (nodes, exporters, provider_a):
        a, b, c = nodes
        leaf = await c.spawn(Leaf)
        middle = await b.spawn(Middle)
        tracer = provider_a.get_tracer("test")
        with (
            caplog.at_level(logging.ERROR, "opentelemetry"),
            tracer.start_as_current_span("request"),
        ):
            assert await a.call(middle, (leaf, 20)) == 41
        assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]
        spans_a, spans_b, spans_c = (e.get_finished_spans() for e in exporters)
        request = _by_name(list(spans_a), "request")
        call_a = _by_name(list(spans_a), "ember.call")
        receive_b = _by_name(list(spans_b), "ember.receive")
        call_b = _by_name(list(spans_b), "ember.call")
        receive_c = _by_name(list(spans_c), "ember.receive")
        chain = [request, call_a, receive_b, call_b, receive_c]
        assert {s.context.trace_id for s in chain} == {request.context.trace_id}
        for parent, child in itertools.pairwise(chain):
            assert child.parent is not None and child.parent.span_id == parent.context.span_id
        assert receive_b.parent is not None and receive_b.parent.is_remote
        assert [s.kind for s in chain[1:]] == [SpanKind.CLIENT, SpanKind.SERVER] * 2
        assert call_a.attributes is not None and call_a.attributes["ember.target.node"] == "b"
        assert receive_c.attributes is not None
        assert receive_c.attributes["ember.caller.node"] == "b"
        # Every span ended, and inside its parent.
        for parent, child in itertools.pairwise(chain):
            assert parent.start_time <= child.start_time  # type: ignore[operator]
            assert child.end_time <= parent.end_time  # type: ignore[operator]


async def test_a_failed_call_marks_both_spans() -> None:
    async with _three() as (nodes, exporters, provider_a):
        a, _, c = nodes
        leaf = await c.spawn(Leaf)
        with (
            provider_a.get_tracer("test").start_as_current_span("request"),
            pytest.raises(ember.NoProc),
        ):
            await a.call(leaf, "boom")
        call_a = _by_name(list(exporters[0].get_finished_spans()), "ember.call")
        receive_c = _by_name(list(exporters[2].get_finished_spans()), "ember.receive")
        assert call_a.status.status_code is StatusCode.ERROR
        assert receive_c.status.status_code is StatusCode.ERROR
        assert receive_c.events[0].name == "exception"


async def test_nothing_is_traced_outside_a_trace_by_default() -> None:
    async with _three() as (nodes, exporters, _):
        a, b, c = nodes
        middle = await b.spawn(Middle)
        assert await a.call(middle, (await c.spawn(Leaf), 1)) == 3
        assert [e.get_finished_spans() for e in exporters] == [(), (), ()]


async def test_a_sample_ratio_of_one_starts_traces_at_the_caller() -> None:
    async with _three(sample_ratio=1.0) as (nodes, exporters, _):
        a, _, c = nodes
        leaf = await c.spawn(Leaf)
        assert await a.call(leaf, 1) == 2
        root = _by_name(list(exporters[0].get_finished_spans()), "ember.call")
        assert root.parent is None
        receive = _by_name(list(exporters[2].get_finished_spans()), "ember.receive")
        assert receive.parent is not None and receive.parent.span_id == root.context.span_id


async def test_a_traced_call_to_an_untraced_node_still_works() -> None:
    provider, exporter = _provider()
    async with (
        ember.Node(
            "a",
            listen="127.0.0.1:0",
            cookie="trace",
            tracing=TracingConfig(provider=provider, sample_ratio=1.0),
        ) as a,
        ember.Node(
            "b",
            listen="127.0.0.1:0",
            cookie="trace",
            connect=[f"a@{a.address}"],
        ) as b,
    ):
        leaf = await b.spawn(Leaf)
        assert await a.call(leaf, 4) == 8
        assert [s.name for s in exporter.get_finished_spans()] == ["ember.call"]


async def test_raft_proposals_are_spans() -> None:
    provider, exporter = _provider()
    tracing = TracingConfig(provider=provider, sample_ratio=1.0)
    async with ember.Node("r", tracing=tracing) as node:
        cluster = await Cluster.start(3, name="kv", node=node)
        await cluster.wait_for_leader(timeout=20)
        await cluster.write({"key": "k", "value": 1}, timeout=10)
    spans = [s for s in exporter.get_finished_spans() if s.name == "raft.propose"]
    assert spans and spans[0].attributes is not None
    assert spans[0].attributes["ember.raft.group"] == "kv"


def test_tracing_config_is_validated() -> None:
    with pytest.raises(ember.UsageError):
        TracingConfig(sample_ratio=2)
    with pytest.raises(ember.UsageError):
        TracingConfig(provider=TracerProvider(), otlp_endpoint="http://x")
    with pytest.raises(ember.UsageError):
        ember.Node("x", tracing="on")  # type: ignore[arg-type]


async def test_registry_writes_and_pg_broadcasts_are_spans() -> None:
    provider, exporter = _provider()
    tracing = TracingConfig(provider=provider, sample_ratio=1.0)
    async with ember.Node("r", tracing=tracing) as node:
        pid = await node.spawn(Leaf)
        with provider.get_tracer("test").start_as_current_span("request"):
            await node.names.register("orders", pid, tier="eventual")
            node.pg.join("workers", pid)
            assert node.pg.broadcast("workers", 1) == 1
    spans = {s.name: s for s in exporter.get_finished_spans()}
    request = spans["request"]
    for name in ("names.register", "pg.broadcast"):
        assert spans[name].parent is not None
        assert spans[name].parent.span_id == request.context.span_id
    assert spans["names.register"].attributes["ember.names.tier"] == "eventual"  # type: ignore[index]
    assert spans["pg.broadcast"].attributes["ember.pg.scope"] == "default"  # type: ignore[index]


class Slow(Contract):
    x = Input(int)

    @compute
    async def doubled(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    outputs = ("doubled",)


async def test_contract_runs_and_steps_are_spans() -> None:
    provider, exporter = _provider()
    async with ember.Node("k", tracing=TracingConfig(provider=provider)):
        with provider.get_tracer("test").start_as_current_span("request"):
            assert await Slow.run({"x": 3}) == {"doubled": 6}
        async with asyncio.timeout(10):  # the coordinator ends its span as it stops
            while not any(s.name == "contract.run" for s in exporter.get_finished_spans()):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    run, step = spans["contract.run"], spans["contract.step"]
    assert run.parent is not None and run.parent.span_id == spans["request"].context.span_id
    assert step.parent is not None and step.parent.span_id == run.context.span_id
    assert step.attributes is not None and step.attributes["ember.step"] == "doubled"
    # about the 10 ms it slept (timers round to the millisecond)
    assert step.end_time - step.start_time >= 5_000_000  # type: ignore[operator]
