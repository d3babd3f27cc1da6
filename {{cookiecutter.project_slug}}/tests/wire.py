"""What the AsyncAPI document says a published message looks like, for the wire tests."""

import json
import secrets
from typing import Any

from app.events.schemas import Envelope


def message_of(document: dict[str, Any], event_type: str) -> dict[str, Any]:
    message: dict[str, Any] = document["components"]["messages"][f"{event_type}:Message"]
    return message


def check_headers(document: dict[str, Any], event_type: str, headers: dict[str, str]) -> None:
    """The headers are exactly those the document lists, each as it says."""
    schema = message_of(document, event_type)["headers"]
    assert set(schema["required"]) <= set(headers) <= set(schema["properties"]), headers
    for name, value in headers.items():
        if "const" in schema["properties"][name]:
            assert value == schema["properties"][name]["const"], name


def check_payload(document: dict[str, Any], event_type: str, body: bytes) -> None:
    """Every field the payload schema requires is in the body sent, nothing more."""
    schema_name = message_of(document, event_type)["payload"]["$ref"].rsplit("/", 1)[-1]
    schema = document["components"]["schemas"][schema_name]
    sent = json.loads(body)
    assert {"id", "version", "occurred_at"} <= set(schema["required"])
    assert set(schema["required"]) == set(sent) == set(schema["properties"]), sent


def expected_headers(envelope: Envelope) -> dict[str, str]:
    """What the relay sends for an envelope, but `traceparent` (see check_trace)."""
    return {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "aggregate_id": envelope.aggregate_id,
        "correlation_id": envelope.correlation_id or str(envelope.event_id),
    }


def traced_envelope(envelope: Envelope) -> Envelope:
    """The envelope as if written in a sampled trace."""
    traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    return envelope.model_copy(update={"traceparent": traceparent})


def check_trace(envelope: Envelope, headers: dict[str, str]) -> dict[str, str]:
    """The message continues the envelope's trace (tracing is on in the suite: the
    parent is the publication's span, in the same trace); the other headers."""
    assert envelope.traceparent is not None
    sent = headers["traceparent"].split("-")
    stored = envelope.traceparent.split("-")
    assert (sent[0], sent[1]) == (stored[0], stored[1]), sent
    sampled = int(sent[3], 16) & 1
    assert sampled == int(stored[3], 16) & 1, sent
    assert sent[2] != stored[2], "the publication's own span is the parent"
    return {name: value for name, value in headers.items() if name != "traceparent"}
