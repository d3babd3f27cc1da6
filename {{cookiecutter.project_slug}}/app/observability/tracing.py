"""Tracing with OpenTelemetry: one trace from an HTTP request to the consumer that
handled its event.

On when OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test hands over an exporter): FastAPI,
the database driver and Redis are instrumented, the broker gets FastStream's telemetry
middleware, and spans go to the endpoint over OTLP/HTTP in batches, from a background
thread. Each event written to the outbox gets a `create <event type>` span whose W3C
trace context is stored with the event; the relay publishes under that context (a
`send <event type>` span), FastStream writes it into the message's `traceparent` header,
and the consumer continues the trace from there.

Off (the default), nothing is instrumented: no middleware, no wrapped driver, no span
made. What is left is a context lookup in each log line (app/core/logging.py finds no
span) and one check of a module variable per event written and per event relayed.
"""

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
{%- if cookiecutter.database == "mongodb" %}
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
{%- endif %}
from opentelemetry.instrumentation.redis import RedisInstrumentor
{%- if cookiecutter.database == "postgres" %}
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
{%- endif %}
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from app import about
from app.settings import Settings

if TYPE_CHECKING:
    from app.events.schemas import DomainEvent, Envelope

# Span attributes of every span about one event: the outbox write, the relay's send and
# the consumer's processing.
EVENT_ID = "event.id"
EVENT_TYPE = "event.type"
TRACEPARENT = "traceparent"
# Probes and scrapes come every few seconds: their traces would bury the requests'.
UNTRACED_URLS = "/health/,/metrics"
# Where work enters the service: a request, a consumed message, an event sent. A database
# or Redis call with no span around it (the relay's polling, say) starts no trace of its own.
ENTRY_KINDS = frozenset({SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER})

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()
_OFF: AbstractContextManager[object] = nullcontext()


class EntryPointSampler(Sampler):
    """New traces start only at entry points (ENTRY_KINDS), `ratio` of them kept."""

    def __init__(self, ratio: float) -> None:
        self.ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind not in ENTRY_KINDS:
            return SamplingResult(Decision.DROP)
        return self.ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"EntryPointSampler({self.ratio.rate})"


def sampler(ratio: float) -> Sampler:
    """A caller's sampled `traceparent` is followed; new traces start at entry points."""
    return ParentBased(root=EntryPointSampler(ratio))


def configure_tracing(
    settings: Settings, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Turn tracing on for this process when an endpoint is set or an exporter given; the
    provider, or None while tracing is off. Once on it stays on (OpenTelemetry's global
    provider is set once): a later call only adds its exporter."""
    global _provider, _tracer
    if _provider is not None:
        if exporter is not None:
            _provider.add_span_processor(SimpleSpanProcessor(exporter))
        return _provider
    endpoint = settings.otel.exporter_otlp_endpoint
    if exporter is None and not endpoint:
        return None
    resource = Resource.create(
        {
            "service.name": settings.otel.service_name,
            "service.version": about.VERSION,
            "deployment.environment.name": settings.app.environment,
        }
    )
    provider = TracerProvider(resource=resource, sampler=sampler(settings.otel.traces_sampler_arg))
    if endpoint:
        traces = f"{endpoint.rstrip('/')}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
{%- if cookiecutter.database == "postgres" %}
    # Wraps create_async_engine, which app/storage/postgres/database.py looks up when it
    # makes its engine: engines made from now on are traced. The instrumentation declares
    # SQLAlchemy < 2.1; the engine events it listens to are the same in 2.1, and the
    # suite's trace test sees the statements' spans.
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
{%- else %}
    # A command listener for the clients made from now on.
    PymongoInstrumentor().instrument(tracer_provider=provider)
{%- endif %}
    _provider = provider
    _tracer = provider.get_tracer(__name__, about.VERSION)
    return provider


def tracer_provider() -> TracerProvider | None:
    """The provider while tracing is on, else None."""
    return _provider


def instrument_app(app: FastAPI) -> None:
    """A server span for each request, outermost (while tracing is on)."""
    if _provider is None:
        return
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=UNTRACED_URLS,
        # One span per request: not one more per chunk received and sent.
        exclude_spans=["receive", "send"],
    )


def flush_tracing() -> None:
    """Export the spans still buffered (on shutdown)."""
    if _provider is not None:
        _provider.force_flush()


def outbox_trace_context(event: "DomainEvent") -> str | None:
    """The `traceparent` to store with an event written to the outbox: that of a
    `create <event type>` span, a child of the current span. None while tracing is off."""
    if _provider is None:
        return None
    span = _tracer.start_span(
        f"create {event.event_type}",
        kind=SpanKind.PRODUCER,
        attributes={
            EVENT_ID: str(event.id),
            EVENT_TYPE: event.event_type,
            "messaging.operation.type": "create",
        },
    )
    span.end()
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def relaying(envelope: "Envelope") -> AbstractContextManager[object]:
    """Around the relay's publish of one event: a `send <event type>` span continuing the
    trace stored with the event, current while the broker client publishes."""
    if _provider is None:
        return _OFF
    carrier = {TRACEPARENT: envelope.traceparent} if envelope.traceparent else {}
    # From an empty context: the relay's own (its polling) is no part of the event's trace.
    parent = _propagator.extract(carrier, context=Context())
    return _tracer.start_as_current_span(
        f"send {envelope.event_type}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            EVENT_ID: str(envelope.event_id),
            EVENT_TYPE: envelope.event_type,
            "messaging.operation.type": "send",
        },
    )


def annotate_event(event: "DomainEvent") -> None:
    """The event's id and type on the current span (the consumer's, as it processes it)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({EVENT_ID: str(event.id), EVENT_TYPE: event.event_type})


def current_trace_ids() -> tuple[str, str] | None:
    """The current trace and span ids, in hex as in `traceparent`; None outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
