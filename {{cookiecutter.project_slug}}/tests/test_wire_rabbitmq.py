"""A published event as a RabbitMQ consumer receives it, against the AsyncAPI document."""

from uuid import uuid4

import aio_pika
from httpx import AsyncClient

from app.events.schemas import Envelope, ItemCreated
from app.observability.tracing import relaying
from app.services import Services
from app.settings import Settings
from tests.wire import (
    check_headers,
    check_payload,
    check_trace,
    expected_headers,
    message_of,
    traced_envelope,
)


async def test_a_consumed_message_is_what_the_asyncapi_document_says(
    client: AsyncClient, services: Services, settings: Settings
) -> None:
    document = (await client.get("/asyncapi.json")).json()
    event = ItemCreated(item_id=uuid4(), owner_id=uuid4(), name="wire")
    envelope = traced_envelope(Envelope.of(event))
    connection = await aio_pika.connect(settings.broker.url)
    async with connection:
        channel = await connection.channel()
        # A private queue, bound as the document's channel says.
        binding = document["channels"][event.event_type]["bindings"]["amqp"]
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(binding["exchange"]["name"], routing_key=event.event_type)
        # As the relay publishes it: continuing the trace the event was written in.
        with relaying(envelope):
            await services.bus.publish(envelope)
        message = await queue.get(timeout=30, fail=True)
        assert message is not None
        await message.ack()
    operation = document["operations"][event.event_type]["bindings"]["amqp"]
    assert message.delivery_mode == operation["deliveryMode"] == 2
    assert operation["mandatory"] is False
    described = message_of(document, event.event_type)
    assert message.type == described["bindings"]["amqp"]["messageType"] == event.event_type
    assert message.content_type == described["contentType"] == "application/json"
    headers = {name: str(value) for name, value in message.headers.items()}
    check_headers(document, event.event_type, headers)
    assert check_trace(envelope, headers) == expected_headers(envelope)
    assert described["correlationId"]["location"] == "$message.header#/correlation_id"
    assert message.correlation_id == headers["correlation_id"]
    assert message.message_id == headers["event_id"] == str(event.id)
    check_payload(document, event.event_type, message.body)
