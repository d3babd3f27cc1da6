from uuid import UUID

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.items.errors import ItemNameTakenError
from app.items.schemas import ItemCreate, ItemPublic
from app.storage.postgres.models import ItemRow


class PostgresItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, data: ItemCreate) -> ItemPublic:
        row = ItemRow(name=data.name, description=data.description)
        try:
            # A savepoint, so a duplicate name leaves the rest of the transaction usable.
            async with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError as exc:
            raise ItemNameTakenError from exc
        await self.session.refresh(row)
        return ItemPublic.model_validate(row)

    async def get(self, item_id: UUID) -> ItemPublic | None:
        row = await self.session.get(ItemRow, item_id)
        return ItemPublic.model_validate(row) if row else None

    async def newest(self, *, limit: int) -> list[ItemPublic]:
        rows = await self.session.scalars(select(ItemRow).order_by(ItemRow.id.desc()).limit(limit))
        return [ItemPublic.model_validate(row) for row in rows]
