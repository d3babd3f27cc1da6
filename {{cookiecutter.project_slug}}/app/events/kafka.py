"""Kafka behind the event bus: one topic per event type, one consumer group per subscription."""

from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from app.events.bus import Subscription
from app.events.schemas import DomainEvent
from app.settings import BrokerSettings


class KafkaEventBus:
    def __init__(self, settings: BrokerSettings, subscriptions: Sequence[Subscription]) -> None:
        self.prefix = settings.prefix
        self.broker = KafkaBroker(
            settings.url,
            acks="all",
            enable_idempotence=settings.idempotent_producer,
            logger=None,
        )
        for subscription in subscriptions:
            self.broker.subscriber(
                self.topic(subscription.event.event_type),
                group_id=f"{settings.prefix}{subscription.name}",
                # A new group starts from the beginning, so no event published before
                # the group first joined is skipped.
                auto_offset_reset="earliest",
            )(subscription.handler)

    def topic(self, event_type: str) -> str:
        return f"{self.prefix}{event_type}"

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def ping(self) -> bool:
        return await self.broker.ping(timeout=2)

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            await self.broker.publish(
                event,
                self.topic(event.event_type),
                key=event.aggregate_id.encode(),
                correlation_id=event.correlation_id,
                headers={"event-type": event.event_type},
            )
