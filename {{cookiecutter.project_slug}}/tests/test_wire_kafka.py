"""A published event as a Kafka consumer receives it, against the AsyncAPI document."""

from uuid import uuid4

from aiokafka import AIOKafkaConsumer, ConsumerRecord  # type: ignore[import-untyped]
from httpx import AsyncClient

from app.events.schemas import Envelope, ItemCreated
from app.observability.tracing import relaying
from app.services import Services
from app.settings import Settings
from tests.conftest import eventually
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
    # As the relay publishes it: continuing the trace the event was written in.
    with relaying(envelope):
        await services.bus.publish(envelope)
    # A reader with no group, from the start of the topic the document names.
    topic = document["channels"][event.event_type]["address"]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.broker.url, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:

        async def ours() -> ConsumerRecord[bytes, bytes] | None:
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batches.values() for r in records):
                headers = {name: value.decode() for name, value in record.headers}
                if headers.get("event_id") == str(event.id):
                    return record
            return None

        record = await eventually(ours)
    finally:
        await consumer.stop()
    described = message_of(document, event.event_type)
    headers = {name: value.decode() for name, value in record.headers}
    check_headers(document, event.event_type, headers)
    # The Kafka stand-in (tansu) passes record headers through as sent, this one too.
    others = check_trace(envelope, headers)
    assert others == expected_headers(envelope) | {"content-type": described["contentType"]}
    assert described["correlationId"]["location"] == "$message.header#/correlation_id"
    key = described["bindings"]["kafka"]["key"]
    assert key["type"] == "string"
    assert record.key.decode() == envelope.aggregate_id == str(event.item_id)
    check_payload(document, event.event_type, record.value)
