"""RabbitMQ behind the event bus: a durable topic exchange, one queue per subscription."""

from collections.abc import Sequence

from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue

from app.events.bus import Subscription
from app.events.schemas import DomainEvent
from app.settings import BrokerSettings


class RabbitEventBus:
    def __init__(self, settings: BrokerSettings, subscriptions: Sequence[Subscription]) -> None:
        self.broker = RabbitBroker(settings.url, logger=None)
        self.exchange = RabbitExchange(
            f"{settings.prefix}events", type=ExchangeType.TOPIC, durable=True
        )
        for subscription in subscriptions:
            queue = RabbitQueue(
                f"{settings.prefix}{subscription.name}.{subscription.event.event_type}",
                durable=True,
                routing_key=subscription.event.event_type,
            )
            self.broker.subscriber(queue, self.exchange)(subscription.handler)

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
                exchange=self.exchange,
                routing_key=event.event_type,
                persist=True,
                message_id=str(event.id),
                correlation_id=event.correlation_id,
                message_type=event.event_type,
            )
