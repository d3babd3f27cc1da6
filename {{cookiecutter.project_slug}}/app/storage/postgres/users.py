from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.storage.postgres.models import UserRow, table_of
from app.storage.postgres.rows import as_dicts, insert_unique, unique_insert
from app.users.errors import EmailTakenError
from app.users.schemas import Role, User

# Plain columns (SQLAlchemy Core), as for items: rows that only become User.
USERS = table_of(UserRow)
READ = select(*USERS.c)
ADD = unique_insert(UserRow)
GET = READ.where(USERS.c.id == bindparam("user_id"))
BY_EMAIL = READ.where(USERS.c.email == bindparam("email"))
LOCK = select(USERS.c.id).where(USERS.c.id == bindparam("user_id")).with_for_update()


class PostgresUserRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def add(self, *, email: str, password_hash: str, role: Role) -> User:
        values = {"email": email, "password_hash": password_hash, "role": role}
        row = await insert_unique(self.connection, ADD, values, EmailTakenError)
        return User.model_validate(row)

    async def get(self, user_id: UUID) -> User | None:
        row = (await self.connection.execute(GET, {"user_id": user_id})).first()
        return User.model_validate(row) if row else None

    async def by_email(self, email: str) -> User | None:
        row = (await self.connection.execute(BY_EMAIL, {"email": email})).first()
        return User.model_validate(row) if row else None

    async def by_ids(self, user_ids: Sequence[UUID]) -> list[User]:
        rows = await self.connection.execute(READ.where(USERS.c.id.in_(user_ids)))
        return [User.model_validate(row) for row in as_dicts(rows)]

    async def set_password(
        self, user_id: UUID, *, password_hash: str, previous: Sequence[str]
    ) -> None:
        await self.connection.execute(
            update(USERS)
            .where(USERS.c.id == user_id)
            .values(password_hash=password_hash, previous_password_hashes=list(previous))
        )

    async def set_role(self, user_id: UUID, role: Role) -> None:
        await self.connection.execute(update(USERS).where(USERS.c.id == user_id).values(role=role))

    async def raise_token_version(self, user_id: UUID) -> None:
        await self.connection.execute(
            update(USERS)
            .where(USERS.c.id == user_id)
            .values(token_version=USERS.c.token_version + 1)
        )

    async def anonymise(self, user_id: UUID, *, email: str, password_hash: str) -> None:
        # FOR UPDATE, held to the commit: it waits for the item inserts in flight (each
        # holds FOR KEY SHARE on its owner's row, see items.py) and holds off new ones,
        # which then find the account erased. A plain UPDATE takes a lock too weak for
        # that, unless it changes a key column: explicit, not left to that rule.
        await self.connection.execute(LOCK, {"user_id": user_id})
        await self.connection.execute(
            update(USERS)
            .where(USERS.c.id == user_id)
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
        id_ = USERS.c.id
        statement = READ.order_by(id_.desc() if descending else id_).limit(limit)
        if after is not None:
            statement = statement.where(id_ < after if descending else id_ > after)
        if before is not None:
            statement = statement.where(id_ > before if descending else id_ < before)
        rows = await self.connection.execute(statement)
        return [User.model_validate(row) for row in as_dicts(rows)]
