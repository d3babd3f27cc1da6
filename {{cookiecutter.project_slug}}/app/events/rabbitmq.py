"""RabbitMQ behind the event bus: a durable topic exchange with one routing key per
event type, persistent messages with publisher confirms, one durable queue per
subscription, and a dead-letter exchange and queue."""

from collections.abc import Mapping, Sequence
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware

from app.events.bus import (
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


class RabbitEventBus:
    def __init__(
        self,
        settings: BrokerSettings,
        events: EventsSettings,
        subscriptions: Sequence[Subscription],
        cache: Cache,
        event_types: Mapping[str, type[DomainEvent]] = EVENT_TYPES,
    ) -> None:
        prefix = settings.prefix
        # Publisher confirms are on by default: publish returns once the broker has the message.
        provider = tracer_provider()
        self.broker = RabbitBroker(
            settings.url,
            logger=None,
            graceful_timeout=events.graceful_timeout_seconds,
            # While tracing is on: a span for each publish and each message processed, and
            # the trace context in the message headers.
            middlewares=[RabbitTelemetryMiddleware(tracer_provider=provider)] if provider else [],
        )
        self.exchange = RabbitExchange(f"{prefix}events", type=ExchangeType.TOPIC, durable=True)
        self.dead_exchange = RabbitExchange(
            f"{prefix}dead-letters", type=ExchangeType.TOPIC, durable=True
        )
        self.consumers: list[EventConsumer] = []
        for subscription in subscriptions:
            consumer = EventConsumer(subscription, bus=self, cache=cache, settings=events)
            queue = RabbitQueue(
                f"{prefix}{subscription.name}.{subscription.event.event_type}",
                durable=True,
                routing_key=subscription.event.event_type,
            )
            self.broker.subscriber(
                queue,
                self.exchange,
                decoder=raw_body,
                # Acknowledged after processing; requeued if even dead-lettering failed.
                ack_policy=AckPolicy.NACK_ON_ERROR,
                title=f"{subscription.name}:{subscription.event.event_type}",
            )(consumer.handle)
            self.consumers.append(consumer)
        # Declared for the AsyncAPI document: one channel per event type, with its schema.
        self.publishers = {
            event_type: self.broker.publisher(
                exchange=self.exchange,
                routing_key=event_type,
                schema=event,
                title=event_type,
                # As publish() sends them: persistent (deliveryMode 2), not mandatory.
                persist=True,
                mandatory=False,
            )
            for event_type, event in event_types.items()
        }
        self.dead_letters = self.broker.subscriber(
            RabbitQueue(f"{prefix}dead-letter", durable=True, routing_key="#"),
            self.dead_exchange,
            persistent=False,
            include_in_schema=False,
        )

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
            exchange=self.exchange,
            routing_key=envelope.event_type,
            persist=True,
            # An event nobody subscribes to yet is not an error.
            mandatory=False,
            message_id=str(envelope.event_id),
            correlation_id=correlation_id(envelope),
            message_type=envelope.event_type,
            content_type="application/json",
            headers=dict(event_headers(envelope)),
        )

    async def publish_raw(self, event_type: str, body: bytes) -> None:
        await self.broker.publish(
            body, exchange=self.exchange, routing_key=event_type, persist=True, mandatory=False
        )

    async def dead_letter(self, subscription: str, body: bytes, headers: dict[str, str]) -> None:
        amqp_headers: dict[str, Any] = dict(headers)
        await self.broker.publish(
            body,
            exchange=self.dead_exchange,
            routing_key=subscription,
            persist=True,
            headers=amqp_headers,
        )

    async def next_dead_letter(self, *, wait_seconds: float) -> DeadLetter | None:
        return await take_dead_letter(self.dead_letters, wait_seconds=wait_seconds)

    def specification(self, *, environment: str) -> dict[str, Any]:
        return asyncapi_document(
            self.broker, environment=environment, message_bindings=_message_bindings
        )


def _message_bindings(event_type: str) -> dict[str, Any]:
    # The AMQP properties publish() sets besides the headers: `type`, and `message_id`
    # (the event id), `correlation_id` and `content_type` (as in the headers).
    return {"amqp": {"messageType": event_type, "bindingVersion": "0.3.0"}}
