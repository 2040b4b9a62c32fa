"""OpenTelemetry spans for one node: calls across nodes (caller and callee), Raft proposals,
and any layer's own operations (``node.tracing.span(...)``).

Off by default and free when off: with no :class:`TracingConfig` the node's
:class:`Tracing` is disabled and every hook is one attribute test. With a config, a remote
call starts a CLIENT span when a span is already active (a child, always) or when the sampler
picks a new trace (``sample_ratio``); its W3C trace context travels in the call's frame, and
the callee's SERVER span is its child. The callee's span is current while the target's
``receive`` runs, so the calls it makes, and the user's own spans, are its children.

Spans start and end in the same task and context (the "Failed to detach context" pitfall of
OTel under asyncio): a CLIENT span is never made current (it ends in the reply's callback), a
SERVER span is attached and detached around one ``receive`` in the worker that runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import UsageError

if TYPE_CHECKING:
    import asyncio

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = ["CallScope", "ClientSpan", "Tracing", "TracingConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TracingConfig:
    """How a node traces (``Node(tracing=TracingConfig(...))``; see ``docs/operability.md``).

    Without ``provider``, the node makes its own SDK ``TracerProvider`` with a parent-based
    ratio sampler and, if ``otlp_endpoint`` is set, an OTLP/HTTP exporter (needs the ``otlp``
    extra: ``pip install 'ember[otlp]'``). With ``provider`` (a test's, with an in-memory
    exporter; or the application's), that one is used as it is and ``sample_ratio`` only
    decides when the node starts a new trace itself.
    """

    sample_ratio: float = 0.0
    """Fraction of the node's own root operations (a remote call with no span active) that
    start a trace. 0 (the default): only work already inside a trace is traced."""
    provider: TracerProvider | None = None
    otlp_endpoint: str | None = None
    """``http://collector:4318/v1/traces``: export spans there in batches."""
    service_name: str = "ember"
    """The ``service.name`` resource attribute of the node's own provider."""

    def __post_init__(self) -> None:
        ratio = self.sample_ratio
        if ratio.__class__ not in (int, float) or not 0.0 <= ratio <= 1.0:
            raise UsageError(f"sample_ratio must be a number in 0..1, not {ratio!r}")
        if self.provider is not None and self.otlp_endpoint is not None:
            raise UsageError("give a provider or an otlp_endpoint, not both")


class Tracing:
    """One node's tracer (``node.tracing``). ``enabled`` is False without a config: then
    :meth:`client_span` and :meth:`server_scope` return None at once and :meth:`span` is a
    no-op context manager."""

    def __init__(self, config: TracingConfig | None, node_name: str) -> None:
        self.config = config
        self.enabled = config is not None
        self.node_name = node_name
        self._tracer: Tracer | None = None
        self._provider: TracerProvider | None = None
        self._own_provider = False
        if config is not None:
            self._setup(config)

    def _setup(self, config: TracingConfig) -> None:
        from opentelemetry.propagators.textmap import DefaultGetter, DefaultSetter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        provider = config.provider
        if provider is None:
            resource = Resource.create(
                {"service.name": config.service_name, "service.instance.id": self.node_name}
            )
            sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
            provider = TracerProvider(resource=resource, sampler=sampler)
            if config.otlp_endpoint is not None:
                provider.add_span_processor(_otlp_processor(config.otlp_endpoint))
            self._own_provider = True
        self._provider = provider
        self._tracer = provider.get_tracer("ember", schema_url=None)
        self._propagator = TraceContextTextMapPropagator()
        self._getter, self._setter = DefaultGetter(), DefaultSetter()
        self._ratio = config.sample_ratio
        from opentelemetry import trace

        self._trace = trace
        self._current_span = trace.get_current_span

    def shutdown(self) -> None:
        """Flush and stop the node's own provider (one given in the config is left alone)."""
        if self._own_provider and self._provider is not None:
            self._provider.shutdown()

    # -- calls across nodes ----------------------------------------------------------------

    def client_span(self, target: Any, node: str) -> ClientSpan | None:
        """A CLIENT span for a call to ``target`` on ``node``, or None when this call is not
        traced (tracing off, or no span active and the sampler says no)."""
        if self._tracer is None:
            return None
        if self._ratio == 0.0 and not self._current_span().get_span_context().is_valid:
            return None  # outside any trace and no root sampling: cost nothing more
        trace = self._trace
        span = self._tracer.start_span(
            "ember.call",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "ember.node": self.node_name,
                "ember.target.node": node,
                "ember.target.pid": str(target),
            },
        )
        if not span.is_recording():
            span.end()
            return None
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        return ClientSpan(span, carrier)

    def server_scope(self, carrier: Any, target: Any, peer: str) -> CallScope | None:
        """The SERVER span of a traced call that came from ``peer``, to run around the target's
        receive (None if tracing is off here or the carrier is malformed)."""
        if self._tracer is None or not isinstance(carrier, Mapping):
            return None
        carrier = {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
        ctx = self._propagator.extract(carrier, getter=self._getter)
        return CallScope(self._tracer, ctx, str(target), peer, self.node_name)

    # -- anything else -----------------------------------------------------------------------

    def start_span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Span | None:
        """A span started now and not made current (end it yourself, from any context): for
        work that spans many messages, such as a contract run. A child of the current span,
        or a root when the sampler picks one; None when not traced."""
        if self._tracer is None:
            return None
        if self._ratio == 0.0 and not self._current_span().get_span_context().is_valid:
            return None
        span = self._tracer.start_span(
            name, attributes={"ember.node": self.node_name, **(attributes or {})}
        )
        if not span.is_recording():
            span.end()
            return None
        return span

    def record(
        self,
        name: str,
        seconds: float,
        attributes: Mapping[str, Any] | None = None,
        parent: Span | None = None,
    ) -> None:
        """A finished span of ``seconds`` ending now (a step timed by its own clock), under
        ``parent`` (else as :meth:`start_span` decides)."""
        if self._tracer is None:
            return
        if parent is None and (
            self._ratio == 0.0 and not self._current_span().get_span_context().is_valid
        ):
            return
        import time

        end = time.time_ns()
        ctx = self._trace.set_span_in_context(parent) if parent is not None else None
        span = self._tracer.start_span(
            name,
            context=ctx,
            attributes={"ember.node": self.node_name, **(attributes or {})},
            start_time=end - int(seconds * 1e9),
        )
        span.end(end_time=end)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span | None]:
        """A span around a block (``with node.tracing.span("registry.register"):``), current
        inside it; started only inside an active trace or when the sampler picks a root.
        Enter and leave it in the same task. Yields the span, or None when not traced."""
        if self._tracer is None:
            yield None
            return
        if self._ratio == 0.0 and not self._current_span().get_span_context().is_valid:
            yield None
            return
        attrs = {"ember.node": self.node_name, **(attributes or {})}
        with self._tracer.start_as_current_span(name, attributes=attrs) as span:
            yield span


class ClientSpan:
    """The caller's span of one remote call and the trace context to send with it."""

    __slots__ = ("carrier", "span")

    def __init__(self, span: Span, carrier: dict[str, str]) -> None:
        self.span = span
        self.carrier = carrier

    def end_with(self, fut: asyncio.Future[Any]) -> None:
        """End the span with the call's outcome (a done callback of its future)."""
        if fut.cancelled():
            self.fail(None)
        elif (exc := fut.exception()) is not None:
            self.fail(exc)
        else:
            self.span.end()

    def fail(self, exc: BaseException | None) -> None:
        """End the span marked failed by ``exc`` (None: the call was cancelled)."""
        from opentelemetry.trace import Status, StatusCode

        if exc is not None:
            self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__ if exc else "cancelled"))
        self.span.end()


class CallScope:
    """The callee's span of one traced call: the kernel calls :meth:`enter` before the
    target's receive and :meth:`exit` after it, in the same worker task."""

    __slots__ = ("_ctx", "_node", "_peer", "_span", "_target", "_tracer")

    def __init__(self, tracer: Tracer, ctx: Any, target: str, peer: str, node: str) -> None:
        self._tracer = tracer
        self._ctx = ctx
        self._target = target
        self._peer = peer
        self._node = node
        self._span: Span | None = None

    def enter(self) -> object:
        from opentelemetry import context, trace

        span = self._tracer.start_span(
            "ember.receive",
            context=self._ctx,
            kind=trace.SpanKind.SERVER,
            attributes={
                "ember.node": self._node,
                "ember.pid": self._target,
                "ember.caller.node": self._peer,
            },
        )
        self._span = span
        return context.attach(trace.set_span_in_context(span, self._ctx))

    def exit(self, token: object, exc: BaseException | None) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        context.detach(token)  # type: ignore[arg-type]
        span = self._span
        if span is None:
            return
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.end()


def _otlp_processor(endpoint: str) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
            OTLPSpanExporter,
        )
    except ImportError as exc:
        raise UsageError(
            "otlp_endpoint needs the OTLP exporter: pip install 'ember[otlp]'"
        ) from exc
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
