from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from uuid_utils.compat import uuid7

from app.items.errors import ItemNameTakenError
from app.items.schemas import ItemCreate, ItemPublic

Document = dict[str, Any]
# UUIDv7 ids grow with time, and their text sorts like them: newest first is
# the built-in _id index read backwards.
NEWEST_FIRST = [("_id", DESCENDING)]


async def create_item_indexes(items: AsyncCollection[Document]) -> None:
    await items.create_index("name", unique=True, name="uq_items_name")


def _to_item(document: Document) -> ItemPublic:
    return ItemPublic(
        id=UUID(document["_id"]),
        name=document["name"],
        description=document["description"],
        created_at=document["created_at"],
    )


class MongoItemRepository:
    def __init__(self, items: AsyncCollection[Document]) -> None:
        self.items = items

    async def add(self, data: ItemCreate) -> ItemPublic:
        # MongoDB keeps milliseconds; truncate now so what we return is what is stored.
        now = datetime.now(UTC)
        document: Document = {
            # Ids are stored as their canonical text: readable in any MongoDB client,
            # and free of the driver's UUID representation settings.
            "_id": str(uuid7()),
            "name": data.name,
            "description": data.description,
            "created_at": now.replace(microsecond=now.microsecond // 1000 * 1000),
        }
        try:
            await self.items.insert_one(document)
        except DuplicateKeyError as exc:
            raise ItemNameTakenError from exc
        return _to_item(document)

    async def get(self, item_id: UUID) -> ItemPublic | None:
        document = await self.items.find_one({"_id": str(item_id)})
        return _to_item(document) if document else None

    async def newest(self, *, limit: int) -> list[ItemPublic]:
        cursor = self.items.find().sort(NEWEST_FIRST).limit(limit)
        return [_to_item(document) async for document in cursor]
