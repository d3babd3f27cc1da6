from collections.abc import Sequence
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    bindparam,
    delete,
    exists,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid_utils.compat import uuid7

from app.core.pagination import Cursor
from app.items.errors import ItemNameTakenError
from app.items.repository import OwnerErasedError
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery
from app.storage.postgres.models import ItemRow, UserRow, table_of
from app.storage.postgres.rows import as_dicts
from app.users.erased import ERASED_SUFFIX

# Reads select the table's columns (SQLAlchemy Core), not ORM entities: rows that only
# become ItemPublic need no identity map or instance state, which cost more than the rest
# of a list query's Python work.
ITEMS = table_of(ItemRow)
USERS = table_of(UserRow)
READ = select(*ITEMS.c)
OWNER_LIVE = (USERS.c.id == bindparam("owner_id")) & ~USERS.c.email.endswith(
    ERASED_SUFFIX, autoescape=True
)
# The insert happens only if the owner is live, and the check holds to the commit: the
# select takes FOR KEY SHARE on the owner's row (the lock the foreign-key check takes
# anyway, which no other create waits for). An erasure takes FOR UPDATE on that row first
# (PostgresUserRepository.anonymise): it waits for the creates in flight to commit, then
# finds their items; a create that comes while an erasure holds the row waits for it, and
# PostgreSQL then checks the condition again on the row as the erasure left it, so the
# create inserts nothing. One statement: a separate check after the insert cost a round
# trip per create. ON CONFLICT DO NOTHING: a name clash leaves the transaction usable.
ADD_COLUMNS = ("id", "owner_id", "name", "description", "price_cents", "status")
ADD = (
    insert(ITEMS)
    .from_select(
        ADD_COLUMNS,
        select(*(bindparam(name, type_=ITEMS.c[name].type) for name in ADD_COLUMNS))
        .select_from(USERS)
        .where(OWNER_LIVE)
        .with_for_update(read=True, key_share=True),
    )
    .on_conflict_do_nothing()
    .returning(*ITEMS.c)
)
IS_LIVE = select(exists().where(OWNER_LIVE))
GET = READ.where(ITEMS.c.id == bindparam("item_id"))
# Sortable fields map to columns here, never to raw input.
SORT_COLUMNS = {
    "created_at": ITEMS.c.created_at,
    "name": ITEMS.c.name,
    "price_cents": ITEMS.c.price_cents,
}


class PostgresItemRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def add(self, data: ItemCreate, *, owner_id: UUID) -> ItemPublic:
        values = {**data.model_dump(), "id": uuid7(), "owner_id": owner_id}
        row = (await self.connection.execute(ADD, values)).first()
        if row is not None:
            return ItemPublic.model_validate(row)
        # Nothing inserted: the owner is erased, or the name taken.
        if not await self.connection.scalar(IS_LIVE, {"owner_id": owner_id}):
            raise OwnerErasedError
        raise ItemNameTakenError

    async def get(self, item_id: UUID) -> ItemPublic | None:
        row: Row[Any] | None = (await self.connection.execute(GET, {"item_id": item_id})).first()
        return ItemPublic.model_validate(row) if row else None

    async def by_ids(self, item_ids: Sequence[UUID]) -> list[ItemPublic]:
        rows = await self.connection.execute(READ.where(ITEMS.c.id.in_(item_ids)))
        return [ItemPublic.model_validate(row) for row in as_dicts(rows)]

    async def update(self, item_id: UUID, changes: dict[str, Any]) -> ItemPublic | None:
        statement = (
            update(ITEMS)
            .where(ITEMS.c.id == item_id)
            .values(**changes, updated_at=func.now())
            .returning(*ITEMS.c)
        )
        try:
            async with self.connection.begin_nested():
                row = (await self.connection.execute(statement)).first()
        except IntegrityError as exc:
            raise ItemNameTakenError from exc
        return ItemPublic.model_validate(row) if row else None

    async def delete(self, item_id: UUID) -> bool:
        deleted = await self.connection.scalar(
            delete(ITEMS).where(ITEMS.c.id == item_id).returning(ITEMS.c.id)
        )
        return deleted is not None

    async def find(
        self, query: ItemQuery, *, after: Cursor | None, limit: int, before: Cursor | None = None
    ) -> list[ItemPublic]:
        filters = {"status": query.status, "owner_id": query.owner_id}
        values: dict[str, Any] = {
            name: value for name, value in filters.items() if value is not None
        }
        for name, cursor in (("after", after), ("before", before)):
            if cursor is not None:
                values |= {f"{name}_value": cursor.value, f"{name}_id": cursor.id}
        statement = _listing(
            query.sort_field,
            descending=query.descending,
            filters=tuple(name for name in filters if name in values),
            after=after is not None,
            before=before is not None,
        )
        rows = await self.connection.execute(statement, {**values, "limit": limit})
        return [ItemPublic.model_validate(row) for row in as_dicts(rows)]


@cache
def _listing(
    field: str, *, descending: bool, filters: tuple[str, ...], after: bool, before: bool
) -> Select[Any]:
    """The list query of one shape (at most 96), built once, its values bound at each
    call. Built per call, it cost about 30% of the list query's own work (730 µs against 513)."""
    column, id_ = SORT_COLUMNS[field], ITEMS.c.id
    statement = READ.where(*(ITEMS.c[name] == bindparam(name) for name in filters))
    key: ColumnElement[Any] = tuple_(column, id_)

    def cursor(name: str) -> ColumnElement[Any]:
        return tuple_(
            bindparam(f"{name}_value", type_=column.type), bindparam(f"{name}_id", type_=id_.type)
        )

    if after:
        bound = cursor("after")
        statement = statement.where(key < bound if descending else key > bound)
    if before:
        stop = cursor("before")
        statement = statement.where(key > stop if descending else key < stop)
    order = (column.desc(), id_.desc()) if descending else (column, id_)
    return statement.order_by(*order).limit(bindparam("limit"))
