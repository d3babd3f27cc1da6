from typing import Any, TypeVar

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ConflictError
from app.storage.postgres.models import Base

R = TypeVar("R", bound=Base)


async def insert_unique(
    session: AsyncSession, table: type[R], values: dict[str, Any], conflict: type[ConflictError]
) -> R:
    """Insert a row, raising `conflict` if it would break a unique constraint.

    One round trip: ON CONFLICT DO NOTHING leaves the transaction usable (no savepoint
    needed), and RETURNING brings back the row with its server defaults."""
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(table)
    row = await session.scalar(statement)
    if row is None:
        raise conflict
    return row
