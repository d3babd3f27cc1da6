from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from app.users.schemas import Role, User


class UserRepository(Protocol):
    async def add(self, *, email: str, password_hash: str, role: Role) -> User:
        """Store a new user; raise EmailTakenError if the email is in use."""
        ...

    async def get(self, user_id: UUID) -> User | None: ...

    async def by_email(self, email: str) -> User | None: ...

    async def by_ids(self, user_ids: Sequence[UUID]) -> list[User]: ...

    async def set_password(
        self, user_id: UUID, *, password_hash: str, previous: Sequence[str]
    ) -> None: ...

    async def set_role(self, user_id: UUID, role: Role) -> None: ...

    async def raise_token_version(self, user_id: UUID) -> None:
        """End every session, in the transaction of the change that calls for it: a
        refresh token issued under an earlier version is refused."""
        ...

    async def anonymise(self, user_id: UUID, *, email: str, password_hash: str) -> None:
        """Replace what identifies the person; the id stays, so records still refer to it."""
        ...

    async def page(
        self,
        *,
        after: UUID | None,
        limit: int,
        before: UUID | None = None,
        descending: bool = False,
    ) -> list[User]:
        """Users in id order (oldest first; newest with `descending`), beyond `after` and
        short of `before` in that order."""
        ...
