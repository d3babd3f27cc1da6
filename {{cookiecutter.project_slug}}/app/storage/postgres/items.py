from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Row, delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import Cursor
from app.items.errors import ItemNameTakenError
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery
from app.storage.postgres.models import ItemRow, table_of
from app.storage.postgres.rows import insert_unique, unique_insert

# Reads select the table's columns (SQLAlchemy Core), not ORM entities: rows that only
# become ItemPublic need no identity map or instance state, which cost more than the rest
# of a list query's Python work.
ITEMS = table_of(ItemRow)
READ = select(*ITEMS.c)
ADD = unique_insert(ItemRow)
# Sortable fields map to columns here, never to raw input.
SORT_COLUMNS = {
    "created_at": ITEMS.c.created_at,
    "name": ITEMS.c.name,
    "price_cents": ITEMS.c.price_cents,
}


class PostgresItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, data: ItemCreate, *, owner_id: UUID) -> ItemPublic:
        values = {**data.model_dump(), "owner_id": owner_id}
        row = await insert_unique(self.session, ADD, values, ItemNameTakenError)
        return ItemPublic.model_validate(row)

    async def get(self, item_id: UUID) -> ItemPublic | None:
        row: Row[Any] | None = (
            await self.session.execute(READ.where(ITEMS.c.id == item_id))
        ).first()
        return ItemPublic.model_validate(row) if row else None

    async def update(self, item_id: UUID, changes: dict[str, Any]) -> ItemPublic | None:
        statement = (
            update(ItemRow)
            .where(ItemRow.id == item_id)
            .values(**changes, updated_at=func.now())
            .returning(ItemRow)
        )
        try:
            async with self.session.begin_nested():
                row = await self.session.scalar(statement)
        except IntegrityError as exc:
            raise ItemNameTakenError from exc
        return ItemPublic.model_validate(row) if row else None

    async def delete(self, item_id: UUID) -> bool:
        deleted = await self.session.scalar(
            delete(ItemRow).where(ItemRow.id == item_id).returning(ItemRow.id)
        )
        return deleted is not None

    async def find(
        self, query: ItemQuery, *, after: Cursor | None, limit: int, before: Cursor | None = None
    ) -> list[ItemPublic]:
        column, id_ = SORT_COLUMNS[query.sort_field], ITEMS.c.id
        statement = READ
        if query.status is not None:
            statement = statement.where(ITEMS.c.status == query.status)
        if query.owner_id is not None:
            statement = statement.where(ITEMS.c.owner_id == query.owner_id)
        key: ColumnElement[Any] = tuple_(column, id_)
        if after is not None:
            bound = tuple_(after.value, after.id)
            statement = statement.where(key < bound if query.descending else key > bound)
        if before is not None:
            stop = tuple_(before.value, before.id)
            statement = statement.where(key > stop if query.descending else key < stop)
        order = (column.desc(), id_.desc()) if query.descending else (column, id_)
        rows = await self.session.execute(statement.order_by(*order).limit(limit))
        return [ItemPublic.model_validate(row) for row in rows]
