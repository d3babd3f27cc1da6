"""The one event-bus interface the application uses, whichever broker is behind it."""

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from faststream.specification import AsyncAPI

from app import about
from app.events.schemas import DomainEvent, Envelope

if TYPE_CHECKING:
    from app.events.consumer import EventConsumer

Handler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """Deliver every event of `event` type to `handler`, under a durable consumer `name`."""

    name: str
    event: type[DomainEvent]
    handler: Handler


@dataclass(frozen=True)
class DeadLetter:
    """A message no consumer could process, with why."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class EventBus(Protocol):
    @property
    def consumers(self) -> Sequence["EventConsumer"]:
        """One per subscription, in the order given."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop consuming; messages being processed finish first (graceful timeout)."""
        ...

    async def ping(self) -> bool: ...

    async def publish(self, envelope: Envelope) -> None:
        """Send durably: return only once the broker has confirmed the message."""
        ...

    async def publish_raw(self, event_type: str, body: bytes) -> None:
        """Send bytes as if they were an event of that type (tests, replays)."""
        ...

    async def dead_letter(
        self, subscription: str, body: bytes, headers: dict[str, str]
    ) -> None: ...

    async def next_dead_letter(self, *, wait_seconds: float) -> DeadLetter | None:
        """Take the oldest message from the dead-letter destination, if any."""
        ...

    def specification(self, *, environment: str) -> dict[str, Any]:
        """The AsyncAPI document of the events this service publishes and consumes."""
        ...


async def take_dead_letter(reader: Any, *, wait_seconds: float) -> DeadLetter | None:
    """One message from a FastStream subscriber kept for reading on demand, acknowledged."""
    message = await reader.get_one(timeout=wait_seconds)
    if message is None:
        return None
    await message.ack()
    return DeadLetter(body=message.body, headers={k: str(v) for k, v in message.headers.items()})


# What each event carries besides its JSON body. Names are snake_case, the style of the
# `correlation_id` header FastStream writes itself; a broker adapter may add the MIME
# `content-type` header FastStream consumers decode by, where its protocol has no property.
HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event_id": {
            "type": "string",
            "format": "uuid",
            "description": "The event's id, as in the body: consumers skip one seen before.",
        },
        "event_type": {"type": "string", "description": "The event type, as in the channel."},
        "aggregate_id": {
            "type": "string",
            "description": "The entity the event is about; its events keep their order.",
        },
        "correlation_id": {
            "type": "string",
            "description": "The id of the request that caused the event, else the event's id.",
        },
        # W3C Trace Context (https://www.w3.org/TR/trace-context/), sent while tracing is
        # on, or when the event was written in a trace: a consumer continues that trace.
        "traceparent": {
            "type": "string",
            "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "The W3C trace context of the event's publication, as "
            "`version-traceid-parentid-flags`; absent when no trace was recorded.",
        },
        "tracestate": {
            "type": "string",
            "description": "Vendor-specific trace data that goes with `traceparent`, if any.",
        },
    },
    "required": ["event_id", "event_type", "aggregate_id", "correlation_id"],
}


def correlation_id(envelope: Envelope) -> str:
    return envelope.correlation_id or str(envelope.event_id)


def event_headers(envelope: Envelope) -> dict[str, str]:
    """The headers every published event carries, as HEADERS_SCHEMA describes them. The
    stored `traceparent` goes along as it is; while tracing is on, the broker's telemetry
    middleware replaces it with that of the publication, a child of it."""
    headers = {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "aggregate_id": envelope.aggregate_id,
        "correlation_id": correlation_id(envelope),
    }
    if envelope.traceparent:
        headers["traceparent"] = envelope.traceparent
    return headers


def asyncapi_document(
    broker: Any,
    *,
    environment: str,
    headers: dict[str, Any] = HEADERS_SCHEMA,
    message_bindings: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """FastStream's document, completed with what FastStream does not know: the project,
    the server named by environment, and each message's content type, headers and
    broker bindings (`message_bindings` of the event type)."""
    specification = AsyncAPI(
        broker,
        title=about.TITLE,
        version=about.VERSION,
        description=about.DESCRIPTION,
        contact=about.CONTACT,
    ).to_specification()
    # FastStream names its one server "development" whatever the environment.
    text = specification.to_json().replace('"#/servers/development"', f'"#/servers/{environment}"')
    document: dict[str, Any] = json.loads(text)
    servers = document.get("servers", {})
    if "development" in servers:
        server = servers.pop("development")
        # Never publish credentials a URL may carry.
        server["host"] = server["host"].rpartition("@")[2]
        servers[environment] = server
    for name, message in document.get("components", {}).get("messages", {}).items():
        # "item.created:Message", "activity-feed:item.created:SubscribeMessage"
        event_type = name.rsplit(":", 1)[0].rsplit(":", 1)[-1]
        message["contentType"] = "application/json"
        message["headers"] = headers
        message["correlationId"] = {"location": "$message.header#/correlation_id"}
        if message_bindings is not None:
            message["bindings"] = message_bindings(event_type)
    return document
