"""The item service against the real database."""

from uuid import uuid4

import pytest

from app.items import service
from app.items.errors import ItemNameTakenError, ItemNotFoundError
from app.items.schemas import ItemCreate
from app.services import Services
from tests.conftest import unique


async def test_create_then_get(services: Services) -> None:
    data = ItemCreate(name=unique("widget"), description="blue")
    created = await service.create_item(database=services.database, data=data)
    fetched = await service.get_item(database=services.database, item_id=created.id)
    assert fetched == created
    assert (fetched.name, fetched.description) == (data.name, "blue")


async def test_names_are_unique(services: Services) -> None:
    data = ItemCreate(name=unique("twin"))
    await service.create_item(database=services.database, data=data)
    with pytest.raises(ItemNameTakenError):
        await service.create_item(database=services.database, data=data)


async def test_missing_item(services: Services) -> None:
    with pytest.raises(ItemNotFoundError):
        await service.get_item(database=services.database, item_id=uuid4())


async def test_newest_first(services: Services) -> None:
    names = [unique("ordered") for _ in range(3)]
    for name in names:
        await service.create_item(database=services.database, data=ItemCreate(name=name))
    newest = await service.list_items(database=services.database, limit=3)
    assert [item.name for item in newest] == names[::-1]
