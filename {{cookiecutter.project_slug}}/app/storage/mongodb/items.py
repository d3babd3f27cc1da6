from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from uuid_utils.compat import uuid7

from app.core.pagination import Cursor
from app.items.errors import ItemNameTakenError
from app.items.repository import OwnerErasedError
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery
from app.users.erased import is_erased

Document = dict[str, Any]
AfterCommit = Callable[[], Awaitable[None]]
# The public id lives in its own field (UUIDv7 text, sorting like creation time);
# `_id` stays MongoDB's own, so every compound index can end with the public id.
INDEXES: list[tuple[str, list[tuple[str, int]], bool]] = [
    ("uq_items_id", [("id", ASCENDING)], True),
    ("uq_items_owner_id_name", [("owner_id", ASCENDING), ("name", ASCENDING)], True),
    ("ix_items_created_at_id", [("created_at", ASCENDING), ("id", ASCENDING)], False),
    (
        "ix_items_owner_id_created_at_id",
        [("owner_id", ASCENDING), ("created_at", ASCENDING), ("id", ASCENDING)],
        False,
    ),
    (
        "ix_items_owner_id_price_cents_id",
        [("owner_id", ASCENDING), ("price_cents", ASCENDING), ("id", ASCENDING)],
        False,
    ),
    (
        "ix_items_owner_id_status_created_at_id",
        [
            ("owner_id", ASCENDING),
            ("status", ASCENDING),
            ("created_at", ASCENDING),
            ("id", ASCENDING),
        ],
        False,
    ),
    (
        "ix_items_status_created_at_id",
        [("status", ASCENDING), ("created_at", ASCENDING), ("id", ASCENDING)],
        False,
    ),
    ("ix_items_name_id", [("name", ASCENDING), ("id", ASCENDING)], False),
    ("ix_items_price_cents_id", [("price_cents", ASCENDING), ("id", ASCENDING)], False),
]


def now_ms() -> datetime:
    # MongoDB keeps milliseconds; truncate now so what we return is what is stored.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def create_item_indexes(items: AsyncCollection[Document]) -> None:
    for name, keys, unique in INDEXES:
        await items.create_index(keys, name=name, unique=unique)


def _to_item(document: Document) -> ItemPublic:
    return ItemPublic.model_validate(
        {**document, "id": UUID(document["id"]), "owner_id": UUID(document["owner_id"])}
    )


class MongoItemRepository:
    def __init__(
        self,
        items: AsyncCollection[Document],
        session: AsyncClientSession | None,
        after_commit: list[AfterCommit] | None = None,
    ) -> None:
        self.items = items
        # Owners, read by a create to tell whether an erasure overtook it.
        self.users: AsyncCollection[Document] = items.database["users"]
        # The unit of work's transaction, when the server supports them.
        self.session = session
        # Checks the unit of work runs once its writes are committed.
        self.after_commit = [] if after_commit is None else after_commit

    async def add(self, data: ItemCreate, *, owner_id: UUID) -> ItemPublic:
        """Insert; once the insert is committed, check that the owner is still live, and
        if not, take the item back (OwnerErasedError).

        Nothing makes a create and an erasure conflict in MongoDB, so the order keeps
        them apart: the erasure commits the account's erased mark first, then deletes its
        items (the erasure service). An item committed before the mark is found by that
        deletion; one committed after it is found by its own create's check, which comes
        after the commit (inside a transaction, a read sees the transaction's snapshot,
        which may be older than the mark). No item outlives both, and no create whose
        check comes after the mark succeeds. A process that dies between its commit and
        its check leaves the item."""
        now = now_ms()
        document: Document = {
            **data.model_dump(),
            "id": str(uuid7()),
            "owner_id": str(owner_id),
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self.items.insert_one(document, session=self.session)
        except DuplicateKeyError as exc:
            raise ItemNameTakenError from exc
        self.after_commit.append(lambda: self._take_back_if_erased(document["id"], owner_id))
        return _to_item(document)

    async def _take_back_if_erased(self, item_id: str, owner_id: UUID) -> None:
        # Outside the transaction: the latest committed state of the account.
        owner = await self.users.find_one({"id": str(owner_id)}, {"email": True})
        if owner is None or is_erased(owner["email"]):
            await self.items.delete_one({"id": item_id})
            raise OwnerErasedError

    async def get(self, item_id: UUID) -> ItemPublic | None:
        document = await self.items.find_one({"id": str(item_id)}, session=self.session)
        return _to_item(document) if document else None

    async def by_ids(self, item_ids: Sequence[UUID]) -> list[ItemPublic]:
        ids = [str(item_id) for item_id in item_ids]
        cursor = self.items.find({"id": {"$in": ids}}, session=self.session)
        return [_to_item(document) async for document in cursor]

    async def update(self, item_id: UUID, changes: dict[str, Any]) -> ItemPublic | None:
        try:
            document = await self.items.find_one_and_update(
                {"id": str(item_id)},
                {"$set": {**changes, "updated_at": now_ms()}},
                return_document=ReturnDocument.AFTER,
                session=self.session,
            )
        except DuplicateKeyError as exc:
            raise ItemNameTakenError from exc
        return _to_item(document) if document else None

    async def delete(self, item_id: UUID) -> bool:
        result = await self.items.delete_one({"id": str(item_id)}, session=self.session)
        return result.deleted_count == 1

    async def find(
        self, query: ItemQuery, *, after: Cursor | None, limit: int, before: Cursor | None = None
    ) -> list[ItemPublic]:
        field = query.sort_field  # one of ItemSort's fields, never raw input
        conditions: list[Document] = []
        if query.status is not None:
            conditions.append({"status": query.status})
        if query.owner_id is not None:
            conditions.append({"owner_id": str(query.owner_id)})
        for bound, lower in ((after, query.descending), (before, not query.descending)):
            if bound is not None:
                operator = "$lt" if lower else "$gt"
                conditions.append(
                    {
                        "$or": [
                            {field: {operator: bound.value}},
                            {field: bound.value, "id": {operator: str(bound.id)}},
                        ]
                    }
                )
        direction = DESCENDING if query.descending else ASCENDING
        cursor = (
            self.items.find({"$and": conditions} if conditions else {}, session=self.session)
            .sort([(field, direction), ("id", direction)])
            .limit(limit)
        )
        return [_to_item(document) async for document in cursor]
