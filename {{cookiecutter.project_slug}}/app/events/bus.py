"""The one event-bus interface the application uses, whichever broker is behind it."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.events.schemas import DomainEvent

Handler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """Deliver every event of `event` type to `handler`, under a durable consumer `name`."""

    name: str
    event: type[DomainEvent]
    handler: Handler


class EventBus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ping(self) -> bool: ...

    async def publish(self, events: Sequence[DomainEvent]) -> None: ...
