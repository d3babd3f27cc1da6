"""What can be done with items, whichever database and API serve them."""

from uuid import UUID

from app.events.schemas import ItemCreated
from app.items.errors import ItemNotFoundError
from app.items.schemas import ItemCreate, ItemPublic
from app.storage.unit_of_work import Database


async def create_item(*, database: Database, data: ItemCreate) -> ItemPublic:
    async with database.unit_of_work() as uow:
        item = await uow.items.add(data)
        uow.emit(ItemCreated(item_id=item.id, name=item.name))
    return item


async def get_item(*, database: Database, item_id: UUID) -> ItemPublic:
    async with database.unit_of_work() as uow:
        item = await uow.items.get(item_id)
    if item is None:
        raise ItemNotFoundError
    return item


async def list_items(*, database: Database, limit: int) -> list[ItemPublic]:
    async with database.unit_of_work() as uow:
        return await uow.items.newest(limit=limit)
