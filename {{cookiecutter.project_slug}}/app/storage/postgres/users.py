from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.postgres.models import UserRow
from app.storage.postgres.rows import insert_unique, unique_insert
from app.users.errors import EmailTakenError
from app.users.schemas import Role, User

ADD = unique_insert(UserRow)


class PostgresUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *, email: str, password_hash: str, role: Role) -> User:
        values = {"email": email, "password_hash": password_hash, "role": role}
        row = await insert_unique(self.session, ADD, values, EmailTakenError)
        return User.model_validate(row)

    async def get(self, user_id: UUID) -> User | None:
        row = await self.session.get(UserRow, user_id)
        return User.model_validate(row) if row else None

    async def by_email(self, email: str) -> User | None:
        row = await self.session.scalar(select(UserRow).where(UserRow.email == email))
        return User.model_validate(row) if row else None

    async def by_ids(self, user_ids: Sequence[UUID]) -> list[User]:
        rows = await self.session.scalars(select(UserRow).where(UserRow.id.in_(user_ids)))
        return [User.model_validate(row) for row in rows]

    async def set_password(
        self, user_id: UUID, *, password_hash: str, previous: Sequence[str]
    ) -> None:
        await self.session.execute(
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(password_hash=password_hash, previous_password_hashes=list(previous))
        )

    async def set_role(self, user_id: UUID, role: Role) -> None:
        await self.session.execute(update(UserRow).where(UserRow.id == user_id).values(role=role))

    async def raise_token_version(self, user_id: UUID) -> None:
        await self.session.execute(
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(token_version=UserRow.token_version + 1)
        )

    async def anonymise(self, user_id: UUID, *, email: str, password_hash: str) -> None:
        await self.session.execute(
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(email=email, password_hash=password_hash, previous_password_hashes=[])
        )

    async def page(
        self,
        *,
        after: UUID | None,
        limit: int,
        before: UUID | None = None,
        descending: bool = False,
    ) -> list[User]:
        order = UserRow.id.desc() if descending else UserRow.id
        statement = select(UserRow).order_by(order).limit(limit)
        if after is not None:
            statement = statement.where(UserRow.id < after if descending else UserRow.id > after)
        if before is not None:
            statement = statement.where(UserRow.id > before if descending else UserRow.id < before)
        return [User.model_validate(row) for row in await self.session.scalars(statement)]
