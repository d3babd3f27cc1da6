from typing import Protocol
from uuid import UUID

from app.items.schemas import ItemCreate, ItemPublic

PAGE_MAX = 100


class ItemRepository(Protocol):
    async def add(self, data: ItemCreate) -> ItemPublic:
        """Store a new item; raise ItemNameTakenError if the name is in use."""
        ...

    async def get(self, item_id: UUID) -> ItemPublic | None: ...

    async def newest(self, *, limit: int) -> list[ItemPublic]: ...
