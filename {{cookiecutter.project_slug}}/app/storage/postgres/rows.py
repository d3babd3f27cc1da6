from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ConflictError
from app.storage.postgres.models import Base

R = TypeVar("R", bound=Base)


async def insert_unique(session: AsyncSession, row: R, conflict: type[ConflictError]) -> R:
    """Insert a row, raising `conflict` if it breaks a unique constraint.

    In a savepoint, so a conflict leaves the rest of the transaction usable."""
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise conflict from exc
    await session.refresh(row)
    return row
