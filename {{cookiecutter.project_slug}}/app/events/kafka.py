"""Kafka behind the event bus: one topic per event type, keyed by aggregate id so
an aggregate's events stay in order; an idempotent producer with acks=all; one
consumer group per subscription, committing only after processing; a dead-letter
topic."""

from collections.abc import Mapping, Sequence
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

from app.events.bus import (
    HEADERS_SCHEMA,
    DeadLetter,
    Subscription,
    asyncapi_document,
    correlation_id,
    event_headers,
    take_dead_letter,
)
from app.events.consumer import EventConsumer, raw_body
from app.events.schemas import EVENT_TYPES, DomainEvent, Envelope
from app.observability.tracing import tracer_provider
from app.settings import BrokerSettings, EventsSettings
from app.storage.cache import Cache


class KafkaEventBus:
    def __init__(
        self,
        settings: BrokerSettings,
        events: EventsSettings,
        subscriptions: Sequence[Subscription],
        cache: Cache,
        event_types: Mapping[str, type[DomainEvent]] = EVENT_TYPES,
    ) -> None:
        self.prefix = settings.prefix
        provider = tracer_provider()
        self.broker = KafkaBroker(
            settings.url,
            acks="all",
            enable_idempotence=settings.idempotent_producer,
            logger=None,
            graceful_timeout=events.graceful_timeout_seconds,
            # While tracing is on: a span for each publish and each message processed, and
            # the trace context in the message headers.
            middlewares=[KafkaTelemetryMiddleware(tracer_provider=provider)] if provider else [],
        )
        self.consumers: list[EventConsumer] = []
        for subscription in subscriptions:
            consumer = EventConsumer(subscription, bus=self, cache=cache, settings=events)
            self.broker.subscriber(
                self.topic(subscription.event.event_type),
                group_id=f"{self.prefix}{subscription.name}",
                # A new group starts from the beginning, so no event published before
                # the group first joined is skipped.
                auto_offset_reset="earliest",
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=settings.session_timeout_ms // 3,
                decoder=raw_body,
                # Committed after processing; consumed again if even dead-lettering failed.
                ack_policy=AckPolicy.NACK_ON_ERROR,
                title=f"{subscription.name}:{subscription.event.event_type}",
            )(consumer.handle)
            self.consumers.append(consumer)
        # Declared for the AsyncAPI document: one channel per event type, with its schema.
        self.publishers = {
            event_type: self.broker.publisher(
                self.topic(event_type), schema=event, title=event_type
            )
            for event_type, event in event_types.items()
        }
        # A reader for inspecting dead letters, not a consumer: no consumer group, so it
        # reads the topic from the start and starting it costs no group join (a broker
        # holds a new group's first join for seconds, waiting for more members).
        self.dead_letters = self.broker.subscriber(
            self.topic("dead-letter"),
            auto_offset_reset="earliest",
            persistent=False,
            include_in_schema=False,
        )

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def start(self) -> None:
        # Starts every subscriber, the dead-letter reader included.
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def ping(self) -> bool:
        return await self.broker.ping(timeout=2)

    async def publish(self, envelope: Envelope) -> None:
        await self.broker.publish(
            envelope.payload.encode(),
            self.topic(envelope.event_type),
            key=envelope.aggregate_id.encode(),
            correlation_id=correlation_id(envelope),
            headers={**event_headers(envelope), "content-type": "application/json"},
        )

    async def publish_raw(self, event_type: str, body: bytes) -> None:
        await self.broker.publish(body, self.topic(event_type))

    async def dead_letter(self, subscription: str, body: bytes, headers: dict[str, str]) -> None:
        await self.broker.publish(
            body, self.topic("dead-letter"), key=subscription.encode(), headers=headers
        )

    async def next_dead_letter(self, *, wait_seconds: float) -> DeadLetter | None:
        return await take_dead_letter(self.dead_letters, wait_seconds=wait_seconds)

    def specification(self, *, environment: str) -> dict[str, Any]:
        return asyncapi_document(
            self.broker, environment=environment, headers=_HEADERS, message_bindings=_bindings
        )


_HEADERS: dict[str, Any] = {
    **HEADERS_SCHEMA,
    "properties": {
        **HEADERS_SCHEMA["properties"],
        "content-type": {"type": "string", "const": "application/json"},
    },
    "required": [*HEADERS_SCHEMA["required"], "content-type"],
}


def _bindings(_: str) -> dict[str, Any]:
    # The key is the aggregate id, so one entity's events stay in one partition, in order.
    key = {"type": "string", "description": "The aggregate id, as in the aggregate_id header."}
    return {"kafka": {"key": key, "bindingVersion": "0.5.0"}}
