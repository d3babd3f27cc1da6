"""The one event-bus interface the application uses, whichever broker is behind it."""

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from faststream.specification import AsyncAPI

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

    def specification(self) -> dict[str, Any]:
        """The AsyncAPI document of the events this service publishes and consumes."""
        ...


async def take_dead_letter(reader: Any, *, wait_seconds: float) -> DeadLetter | None:
    """One message from a FastStream subscriber kept for reading on demand, acknowledged."""
    message = await reader.get_one(timeout=wait_seconds)
    if message is None:
        return None
    await message.ack()
    return DeadLetter(body=message.body, headers={k: str(v) for k, v in message.headers.items()})


def name_servers(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The document with its one server named `name`: FastStream names a lone server
    "development", whatever it is."""
    servers = document.get("servers", {})
    if list(servers) != ["development"] or name == "development":
        return document
    text = json.dumps(document).replace('"#/servers/development"', json.dumps(f"#/servers/{name}"))
    renamed: dict[str, Any] = json.loads(text)
    renamed["servers"] = {name: servers["development"]}
    return renamed


def asyncapi_document(broker: Any) -> dict[str, Any]:
    document = AsyncAPI(broker, title="Events", version="1.0.0").to_specification()
    return dict(json.loads(document.to_json()))
