from typing import Any

from sqlalchemy import Row
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ConflictError
from app.storage.postgres.models import Base, table_of


async def insert_unique(
    session: AsyncSession, model: type[Base], values: dict[str, Any], conflict: type[ConflictError]
) -> Row[Any]:
    """Insert a row, raising `conflict` if it would break a unique constraint.

    One round trip: ON CONFLICT DO NOTHING leaves the transaction usable (no savepoint
    needed), and RETURNING brings back the row with its server defaults, as plain
    columns: the callers only read it, so it needs no ORM object."""
    table = table_of(model)
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(*table.c)
    row = (await session.execute(statement)).first()
    if row is None:
        raise conflict
    return row
