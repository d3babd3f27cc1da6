"""Sent events leave the outbox after EVENTS_SENT_RETENTION_HOURS; pending ones never do."""

from datetime import UTC, datetime, timedelta

from app.events.outbox import HeldEvent
from app.services import Services
from tests.conftest import Account, eventually, new_item


async def held(services: Services, item_id: object) -> list[HeldEvent]:
    return await services.database.outbox.about(str(item_id), [str(item_id)])


async def sent(services: Services, item_id: object) -> list[HeldEvent]:
    async def check() -> list[HeldEvent]:
        events = await held(services, item_id)
        return events if events and all(event.sent for event in events) else []

    result: list[HeldEvent] = await eventually(check)
    return result


async def test_sent_events_past_the_retention_are_deleted_and_newer_kept(
    services: Services, account: Account
) -> None:
    older = await new_item(services, account)
    await sent(services, older.id)
    # Every event sent so far was sent before this; the next one after it.
    boundary = datetime.now(UTC)
    newer = await new_item(services, account)
    await sent(services, newer.id)

    retention = timedelta(hours=services.settings.events.sent_retention_hours)
    deleted = await services.relay.purge(now=boundary + retention)
    assert deleted >= 1
    assert await held(services, older.id) == []
    assert [event.event_type for event in await held(services, newer.id)] == ["item.created"]


async def test_the_purge_deletes_in_bounded_batches(services: Services, account: Account) -> None:
    items = [await new_item(services, account) for _ in range(3)]
    for item in items:
        await sent(services, item.id)
    after_all = datetime.now(UTC) + timedelta(seconds=1)
    outbox = services.database.outbox
    assert await outbox.purge_sent(sent_before=after_all, limit=1) == 1
    # The relay's purge goes on batch after batch until none is left.
    settings = services.settings.events
    retention = timedelta(hours=settings.sent_retention_hours)
    assert await services.relay.purge(now=after_all + retention) >= 2
    for item in items:
        assert await held(services, item.id) == []


async def test_pending_events_are_never_purged(services: Services, account: Account) -> None:
    await services.relay.stop()
    try:
        waiting = await new_item(services, account)
        far_future = datetime.now(UTC) + timedelta(days=3650)
        await services.relay.purge(now=far_future)
        (event,) = await held(services, waiting.id)
        assert not event.sent
    finally:
        services.relay.start()
    await sent(services, waiting.id)
