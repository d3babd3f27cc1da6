"""Tracing: one create request is one trace, from the HTTP server span through the
database, the outbox, the relay's publish and the broker to the consumer's span; and
the log lines written inside it carry its ids."""

import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from httpx import AsyncClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
{%- if cookiecutter.compliance_logging %}

from app.audit.masking import mask_personal_data
from app.core.logging import configure_logging
{%- else %}

from app.core.logging import configure_logging
{%- endif %}
from app.observability.tracing import EVENT_ID, EVENT_TYPE, sampler
from app.services import Services
from tests.api import create_item, succeeded
from tests.conftest import SPANS, Account, eventually, unique

PROJECT = Path(__file__).resolve().parent.parent
{%- if cookiecutter.database == "postgres" %}
DATABASE = "postgresql"
{%- else %}
DATABASE = "mongodb"
{%- endif %}
{%- if cookiecutter.api == "rest" %}
ROUTE = "/api/v1/items"
{%- else %}
ROUTE = "/graphql"
{%- endif %}


def new_trace(trace_hex: str | None = None) -> tuple[str, dict[str, str]]:
    """A trace id, and the headers of a traced caller that keeps the trace (sampled)."""
    trace_id = trace_hex or secrets.token_hex(16)
    return trace_id, {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}


def spans_of(trace_id: str) -> list[ReadableSpan]:
    return [
        span
        for span in SPANS.get_finished_spans()
        if span.context is not None and format(span.context.trace_id, "032x") == trace_id
    ]


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def one(spans: Sequence[ReadableSpan], description: str) -> ReadableSpan:
    assert len(spans) == 1, f"{description}: {[span.name for span in spans]}"
    return spans[0]


def lineage(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[str]:
    """The names of the span and its ancestors, nearest first, as far as the trace goes."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    names = []
    current: ReadableSpan | None = span
    while current is not None:
        names.append(current.name)
        current = by_id.get(current.parent.span_id) if current.parent else None
    return names


async def test_a_create_request_is_one_trace_from_the_http_call_to_the_consumer(
    client: AsyncClient, services: Services, account: Account
) -> None:
    trace_id, headers = new_trace()
    response = await create_item(client, account, unique("traced"), headers=headers)
    assert succeeded(response), response.text

    def consumed() -> list[ReadableSpan]:
        return [
            span
            for span in spans_of(trace_id)
            if span.kind is SpanKind.CONSUMER and attributes(span).get(EVENT_TYPE) == "item.created"
        ]

    async def processed() -> list[ReadableSpan]:
        return consumed()

    consumer = one(await eventually(processed), "the consumer's span")
    spans = spans_of(trace_id)
    server = one([s for s in spans if s.kind is SpanKind.SERVER], "the HTTP server span")
    assert attributes(server)["http.route"] == ROUTE
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == headers["traceparent"].split("-")[2]
    # The database's statements (Redis's commands are CLIENT spans with a db.system too).
    database = [
        span
        for span in spans
        if span.kind is SpanKind.CLIENT
        and DATABASE in {attributes(span).get("db.system"), attributes(span).get("db.system.name")}
    ]
    assert database, f"no {DATABASE} span: {[span.name for span in spans]}"
    assert all(server.name in lineage(span, spans) for span in database)
    created = one([s for s in spans if s.name == "create item.created"], "the outbox write")
    event_id = attributes(created)[EVENT_ID]
    sent = one([s for s in spans if s.name == "send item.created"], "the relay's send")
    assert attributes(sent)[EVENT_ID] == event_id
    published = [s for s in spans if s.kind is SpanKind.PRODUCER and s.name.endswith("publish")]
    assert published, f"no publish span: {[span.name for span in spans]}"
    assert all(sent.name in lineage(span, spans) for span in published)
    # The consumer's span descends from the publication, the relay's send, the outbox
    # write and the request, in that order: one trace, unbroken.
    assert consumer.name.endswith("process")
    assert attributes(consumer)[EVENT_ID] == event_id
    chain = lineage(consumer, spans)
    assert [name for name in chain if name in {sent.name, created.name, server.name}] == [
        sent.name,
        created.name,
        server.name,
    ], chain
    assert chain[-1] == server.name, chain
{%- if cookiecutter.api == "graphql" %}
    # The operation's own span, named by it (tests/api.py names the mutation C).
    assert "mutation C" in lineage(created, spans), lineage(created, spans)
{%- endif %}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The log, configured as the app configures it."""
    stream = io.StringIO()
{%- if cookiecutter.compliance_logging %}
    configure_logging(level="INFO", json=True, stream=stream, redact=mask_personal_data)
    yield stream
    configure_logging(level="INFO", json=True, redact=mask_personal_data)
{%- else %}
    configure_logging(level="INFO", json=True, stream=stream)
    yield stream
    configure_logging(level="INFO", json=True)
{%- endif %}


async def test_a_log_line_inside_a_request_carries_its_trace_and_span_ids(
    client: AsyncClient, log_lines: io.StringIO
) -> None:
    # Thirteen digits in a row, as a trace id may have: they look like a resident
    # registration number to the masking, which must leave the ids alone.
    trace_id, headers = new_trace("a1234561234567b" + secrets.token_hex(9)[:17])
    # An address in the path: the access log line has it, masked with compliance logging.
    response = await client.get("/nowhere/jane.doe@example.com", headers=headers)
    assert response.status_code == 404
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (access,) = [line for line in lines if line["event"] == "request"]
    assert access["trace_id"] == trace_id
    assert len(access["span_id"]) == 16
    int(access["span_id"], 16)
    server = one([s for s in spans_of(trace_id) if s.kind is SpanKind.SERVER], "server span")
    assert server.context is not None
    assert access["span_id"] == format(server.context.span_id, "016x")
{%- if cookiecutter.compliance_logging %}
    assert access["path"] == "/nowhere/[email]"
{%- else %}
    assert access["path"] == "/nowhere/jane.doe@example.com"
{%- endif %}


def test_a_log_line_outside_any_span_has_no_trace_ids(log_lines: io.StringIO) -> None:
    structlog.get_logger("test").info("outside")
    (line,) = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert "trace_id" not in line
    assert "span_id" not in line


def _decision(ratio: float, kind: SpanKind, parent_sampled: bool | None = None) -> bool:
    parent = None
    if parent_sampled is not None:
        flags = TraceFlags(TraceFlags.SAMPLED if parent_sampled else TraceFlags.DEFAULT)
        remote = SpanContext(int(secrets.token_hex(16), 16), 1, is_remote=True, trace_flags=flags)
        parent = trace.set_span_in_context(NonRecordingSpan(remote))
    trace_id = int(secrets.token_hex(16), 16)
    result = sampler(ratio).should_sample(parent, trace_id, "span", kind)
    return result.decision is Decision.RECORD_AND_SAMPLE


@pytest.mark.parametrize("kind", list(SpanKind))
def test_new_traces_start_only_where_work_enters(kind: SpanKind) -> None:
    """A request, a consumed message or a sent event starts a trace; a database or Redis
    call made outside any (the relay's polling, say) does not; a caller decides for its
    own requests, whatever the ratio."""
    entry = kind in {SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER}
    assert _decision(1.0, kind) is entry
    assert _decision(0.0, kind) is False
    assert _decision(0.0, kind, parent_sampled=True) is True
    assert _decision(1.0, kind, parent_sampled=False) is False


OFF_PROBE = """
from opentelemetry import trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from app.main import app
from app.observability.tracing import tracer_provider
assert tracer_provider() is None
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
assert not RedisInstrumentor().is_instrumented_by_opentelemetry
assert not [m for m in app.user_middleware if "OpenTelemetry" in repr(m.cls)], app.user_middleware
print("off")
"""


@pytest.mark.slow
def test_without_an_endpoint_nothing_is_instrumented() -> None:
    """No OTEL_EXPORTER_OTLP_ENDPOINT: no provider, no middleware, no wrapped client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(  # noqa: S603 - this interpreter, a probe of the tests'
        [sys.executable, "-c", OFF_PROBE],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("off")
