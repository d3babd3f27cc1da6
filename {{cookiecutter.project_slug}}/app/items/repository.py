from collections.abc import Sequence
from typing import Any, Protocol
from uuid import UUID

from app.auth.tokens import session_ended
from app.core.errors import UnauthorizedError
from app.core.pagination import Cursor
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery


class OwnerErasedError(UnauthorizedError):
    """The owner's account was erased, perhaps while the create was on its way: its
    sessions are over, as the next request would be told."""

    def __init__(self) -> None:
        super().__init__(session_ended().detail)


class ItemRepository(Protocol):
    async def add(self, data: ItemCreate, *, owner_id: UUID) -> ItemPublic:
        """Store a new item; raise ItemNameTakenError if the owner has one of that name,
        OwnerErasedError (nothing stored) if the owner's account is erased, even by an
        erasure running alongside: an erased account owns no item, now or later."""
        ...

    async def get(self, item_id: UUID) -> ItemPublic | None: ...

    async def by_ids(self, item_ids: Sequence[UUID]) -> list[ItemPublic]:
        """The items of these ids that exist, in one read, in no particular order."""
        ...

    async def update(self, item_id: UUID, changes: dict[str, Any]) -> ItemPublic | None:
        """Apply the changes; None if the item is gone. ItemNameTakenError on a clash."""
        ...

    async def delete(self, item_id: UUID) -> bool: ...

    async def find(
        self, query: ItemQuery, *, after: Cursor | None, limit: int, before: Cursor | None = None
    ) -> list[ItemPublic]:
        """Items matching the query's filters, in its sort order, after the cursor (and
        before `before`, when given)."""
        ...
