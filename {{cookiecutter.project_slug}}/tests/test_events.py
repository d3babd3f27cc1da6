"""Events go through the real broker to the real subscriber."""

from uuid import uuid4

from app.events.schemas import ItemCreated
from app.items import service
from app.items.schemas import ItemCreate
from app.services import Services
from tests.conftest import Account, eventually, unique


async def test_published_event_reaches_the_subscriber(services: Services) -> None:
    event = ItemCreated(item_id=uuid4(), owner_id=uuid4(), name="direct")
    await services.bus.publish([event])
    expected = f"item.created {event.item_id}"

    async def delivered() -> bool:
        return expected in await services.activity.recent()

    assert await eventually(delivered)


async def test_creating_an_item_emits_one_event(services: Services, account: Account) -> None:
    item = await service.create_item(
        database=services.database, owner=account.principal, data=ItemCreate(name=unique("evented"))
    )
    expected = f"item.created {item.id}"

    async def delivered() -> bool:
        return expected in await services.activity.recent()

    assert await eventually(delivered)
    assert (await services.activity.recent()).count(expected) == 1


def test_event_carries_identity_and_metadata() -> None:
    event = ItemCreated(item_id=uuid4(), owner_id=uuid4(), name="x")
    assert event.version == 1
    assert event.occurred_at.tzinfo is not None
    assert event.aggregate_id == str(event.item_id)
    assert ItemCreated.model_validate_json(event.model_dump_json()) == event
