"""Events: through the outbox and the real broker to the real subscriber, exactly once."""

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from httpx import AsyncClient
from prometheus_client import REGISTRY

from app.core.errors import REDIS_DOWN
from app.events.bus import DeadLetter, EventBus, Subscription
from app.events.consumer import EventConsumer, EventInProgressError
from app.events.schemas import Envelope, ItemCreated
from app.services import Services, build_bus, build_services
from app.settings import Settings
from app.storage.cache import Cache
from tests.conftest import Account, eventually, new_item, override, unreachable
from tests.cursors import captured_logs


def activity_of(item_id: UUID) -> str:
    return f"item.created {item_id}"


async def delivered(services: Services, *item_ids: UUID) -> bool:
    recent = await services.activity.recent()
    return all(activity_of(item_id) in recent for item_id in item_ids)


async def create_item(services: Services, account: Account) -> UUID:
    return (await new_item(services, account)).id


async def test_an_action_produces_one_event_processed_once(
    services: Services, account: Account
) -> None:
    item_id = await create_item(services, account)
    assert await eventually(lambda: delivered(services, item_id))
    assert (await services.activity.recent()).count(activity_of(item_id)) == 1


async def test_a_recent_list_keeps_the_newest_first_and_no_more(services: Services) -> None:
    name = f"recent-{uuid4().hex}"
    for n in range(5):
        await services.cache.push_recent(name, f"v{n}", keep=3)
    assert await services.cache.recent(name) == ["v4", "v3", "v2"]


def relay_failures() -> float:
    return REGISTRY.get_sample_value("outbox_relay_failures_total") or 0.0


async def test_broker_outage_holds_events_until_it_is_back(
    services: Services, settings: Settings, account: Account
) -> None:
    relay, consumer = services.relay, services.bus.consumers[0]
    real_bus = relay.bus
    # The relay gets a bus whose broker address refuses connections: every publish fails.
    relay.bus = build_services(unreachable(settings, "broker")).bus
    try:
        item_ids = [await create_item(services, account) for _ in range(5)]
        # Wait until the relay has tried, failed and backed off twice since the last create.
        failed = relay_failures() + 2
        await eventually(lambda: asyncio.sleep(0, result=relay_failures() >= failed))
        held = await services.database.outbox.pending_count()
        assert held >= len(item_ids)
        assert not any([await delivered(services, item_id) for item_id in item_ids])
    finally:
        relay.bus = real_bus
        relay.wake()
    processed_before = consumer.outcomes["processed"]

    async def all_processed() -> bool:
        processed = consumer.outcomes["processed"] - processed_before >= len(item_ids)
        return processed and await delivered(services, *item_ids)

    assert await eventually(all_processed)
    recent = await services.activity.recent()
    assert [recent.count(activity_of(item_id)) for item_id in item_ids] == [1] * len(item_ids)
    assert await eventually(lambda: _none_pending(services))


async def _none_pending(services: Services) -> bool:
    return await services.database.outbox.pending_count() == 0


async def test_duplicate_deliveries_are_ignored(services: Services) -> None:
    consumer = services.bus.consumers[0]
    event = ItemCreated(item_id=uuid4(), owner_id=uuid4())
    before = dict(consumer.outcomes)
    for _ in range(3):
        await services.bus.publish(Envelope.of(event))
    # Other tests' events may be processed meanwhile: at least these are counted.
    assert await eventually(lambda: _grew(consumer.outcomes, before, processed=1, duplicate=2))
    assert (await services.activity.recent()).count(activity_of(event.item_id)) == 1


async def test_a_claim_is_kept_while_its_message_is_processed(services: Services) -> None:
    """A claim outlived a dead worker by two minutes (where the broker reads a partition
    in order, the partition waited as long); now it lapses soon (CLAIM_SECONDS), and a
    live worker renews it while it processes."""
    started, release, runs = asyncio.Event(), asyncio.Event(), []

    async def slow(event: ItemCreated) -> None:
        runs.append(event.id)
        started.set()
        await release.wait()

    events = services.settings.events.model_copy(update={"consumer_retry_later_seconds": 0})
    subscription = Subscription(f"slow-{uuid4().hex[:8]}", ItemCreated, slow)
    consumer = EventConsumer(subscription, bus=services.bus, cache=services.cache, settings=events)
    consumer.claim_seconds = 0.3
    body = Envelope.of(ItemCreated(item_id=uuid4(), owner_id=uuid4())).payload.encode()
    first = asyncio.create_task(consumer.handle(body))
    await started.wait()
    await asyncio.sleep(1.0)  # three claims long: renewed meanwhile
    with pytest.raises(EventInProgressError):
        await consumer.handle(body)
    release.set()
    await first
    await consumer.handle(body)
    assert len(runs) == 1
    assert consumer.outcomes == {"processed": 1, "deferred": 1, "duplicate": 1}

    # A worker that dies with the message in hand renews nothing: its claim lapses.
    release.clear()
    other = Envelope.of(ItemCreated(item_id=uuid4(), owner_id=uuid4())).payload.encode()
    dying = asyncio.create_task(consumer.handle(other))
    await asyncio.sleep(0.1)
    dying.cancel()
    await asyncio.sleep(0.6)  # two claims long
    release.set()
    await consumer.handle(other)
    assert len(runs) == 3


def handled(consumer: EventConsumer) -> float:
    labels = {"consumer": consumer.subscription.name, "event_type": "item.created"}
    return REGISTRY.get_sample_value("events_handling_duration_seconds_count", labels) or 0.0


async def test_a_message_whose_event_is_claimed_is_given_back_after_a_pause(
    services: Services,
) -> None:
    """As a worker that died mid-message leaves its claim: the message was given back
    at once, and came back thousands of times a second, with no log line."""
    consumer = services.bus.consumers[0]
    event = ItemCreated(item_id=uuid4(), owner_id=uuid4())
    claim = services.cache.key(f"processed:{consumer.subscription.name}:{event.id}")
    await services.cache.redis.set(claim, "processing", ex=3)
    deferred, attempts = consumer.outcomes["deferred"], handled(consumer)
    await services.bus.publish(Envelope.of(event))
    # Processed once the claim lapses.
    assert await eventually(lambda: delivered(services, event.item_id))
    pause = services.settings.events.consumer_retry_later_seconds
    assert 1 <= consumer.outcomes["deferred"] - deferred <= 3 / pause + 1
    # Other tests' events may be handled meanwhile, a few; not thousands.
    assert handled(consumer) - attempts < 50


async def test_a_message_is_given_back_after_a_pause_while_redis_is_down(
    services: Services, settings: Settings
) -> None:
    """The claims are in Redis: without it no message can be processed, and each was
    given back at once (14,000 deliveries of one message in a 15 s outage)."""
    down = Cache(unreachable(settings, "redis").redis)
    events = settings.events.model_copy(update={"consumer_retry_later_seconds": 0.05})
    subscription = services.bus.consumers[0].subscription
    consumer = EventConsumer(subscription, bus=services.bus, cache=down, settings=events)
    event = ItemCreated(item_id=uuid4(), owner_id=uuid4())
    body = Envelope.of(event).payload.encode()
    try:
        with captured_logs() as logs, pytest.raises(REDIS_DOWN):
            await consumer.handle(body)
    finally:
        await down.close()
    assert consumer.outcomes == {"deferred": 1}
    # Which event waits, though Redis failed before the consumer had claimed it.
    (line,) = [json.loads(text) for text in logs.getvalue().splitlines()]
    assert (line["event"], line["event_id"]) == ("event_deferred", str(event.id))


async def _grew(outcomes: Any, before: dict[str, int], **expected: int) -> bool:
    return all(outcomes[key] - before.get(key, 0) >= value for key, value in expected.items())


async def find_dead_letter(bus: EventBus, body: bytes) -> DeadLetter:
    for _ in range(20):
        letter = await bus.next_dead_letter(wait_seconds=5)
        if letter is not None and letter.body == body:
            return letter
    raise AssertionError("the message never reached the dead-letter destination")


async def test_a_consumers_dead_letter_count_starts_at_zero(services: Services) -> None:
    """Alerts take the count's increase, which a series born at 1 does not have: the
    first dead letter of each consumer went unreported."""

    async def handler(_: ItemCreated) -> None: ...

    subscription = Subscription(f"probe-{uuid4().hex[:8]}", ItemCreated, handler)
    EventConsumer(
        subscription, bus=services.bus, cache=services.cache, settings=services.settings.events
    )
    labels = {"consumer": subscription.name, "event_type": ItemCreated.event_type}
    assert REGISTRY.get_sample_value("events_dead_lettered_total", labels) == 0


async def test_malformed_message_is_dead_lettered_and_consuming_goes_on(
    services: Services, account: Account
) -> None:
    poison = b'{"item_id": "not-a-uuid", "marker": "' + uuid4().hex.encode() + b'"}'
    labels = {"consumer": "activity-feed", "event_type": ItemCreated.event_type}
    before = REGISTRY.get_sample_value("events_dead_lettered_total", labels) or 0
    await services.bus.publish_raw(ItemCreated.event_type, poison)
    letter = await find_dead_letter(services.bus, poison)

    async def counted() -> bool:
        # The consumer counts the letter once the broker took it: maybe just after it arrived.
        return REGISTRY.get_sample_value("events_dead_lettered_total", labels) == before + 1

    assert await eventually(counted)
    assert (REGISTRY.get_sample_value("events_handling_duration_seconds_count", labels) or 0) > 0
    assert letter.headers["x-error"].startswith("malformed")
    assert letter.headers["x-attempts"] == "0"
    assert letter.headers["x-consumer"] == "activity-feed"
    item_id = await create_item(services, account)
    assert await eventually(lambda: delivered(services, item_id))


async def test_failing_handler_is_dead_lettered_and_shutdown_waits_for_the_message_in_hand(
    services: Services, settings: Settings
) -> None:
    """One bus of its own (own queues or topics and consumer group; a new group's
    first join takes seconds, so the two behaviours share it): a handler that always
    fails is tried the configured number of times and its message dead-lettered; then
    stopping the bus lets a slow handler finish the message it holds."""
    attempts: list[UUID] = []
    started, finished = asyncio.Event(), []

    doomed = ItemCreated(item_id=uuid4(), owner_id=uuid4())
    slow = ItemCreated(item_id=uuid4(), owner_id=uuid4())

    async def handler(event: ItemCreated) -> None:
        if event.item_id == doomed.item_id:
            attempts.append(event.id)
            raise RuntimeError("the downstream system is down")
        started.set()
        await asyncio.sleep(0.5)
        finished.append(event.id)

    isolated = override(settings, "broker", prefix=f"{settings.broker.prefix}{uuid4().hex[:8]}.")
    bus = build_bus(isolated, [Subscription("probe", ItemCreated, handler)], services.cache)
    await bus.start()
    try:
        await bus.publish(Envelope.of(doomed))
        letter = await find_dead_letter(bus, Envelope.of(doomed).payload.encode())
        assert "RuntimeError" in letter.headers["x-error"]
        # Where it came from: the event's own headers (it kept none of them).
        assert letter.headers["event_id"] == str(doomed.id)
        assert letter.headers["aggregate_id"] == str(doomed.item_id)
        assert letter.headers["event_type"] == "item.created"
        assert letter.headers["x-attempts"] == str(settings.events.consumer_attempts)
        assert attempts == [doomed.id] * settings.events.consumer_attempts

        await bus.publish(Envelope.of(slow))
        await asyncio.wait_for(started.wait(), timeout=30)
    finally:
        await bus.stop()
    assert finished == [slow.id]


def test_event_carries_identity_and_metadata() -> None:
    event = ItemCreated(item_id=uuid4(), owner_id=uuid4())
    assert event.version == 1
    assert event.occurred_at.tzinfo is not None
    assert event.aggregate_id == str(event.item_id)
    envelope = Envelope.of(event)
    assert (envelope.event_id, envelope.event_type) == (event.id, "item.created")
    assert ItemCreated.model_validate_json(envelope.payload) == event


async def test_asyncapi_document_describes_the_events(client: AsyncClient) -> None:
    response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["asyncapi"].startswith("3.")
    text = response.text
    for event_type in ("item.created", "item.updated", "item.deleted", "user.registered"):
        assert event_type in text
    assert "ItemCreated" in text
