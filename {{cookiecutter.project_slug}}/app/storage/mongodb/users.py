from collections.abc import Sequence
from uuid import UUID

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from uuid_utils.compat import uuid7

from app.storage.mongodb.items import Document, now_ms
from app.users.errors import EmailTakenError
from app.users.schemas import Role, User


async def create_user_indexes(users: AsyncCollection[Document]) -> None:
    await users.create_index([("id", ASCENDING)], name="uq_users_id", unique=True)
    await users.create_index([("email", ASCENDING)], name="uq_users_email", unique=True)


def _to_user(document: Document) -> User:
    return User.model_validate({**document, "id": UUID(document["id"])})


class MongoUserRepository:
    def __init__(
        self, users: AsyncCollection[Document], session: AsyncClientSession | None
    ) -> None:
        self.users = users
        # The unit of work's transaction, when the server supports them.
        self.session = session

    async def add(self, *, email: str, password_hash: str, role: Role) -> User:
        document: Document = {
            "id": str(uuid7()),
            "email": email,
            "password_hash": password_hash,
            "previous_password_hashes": [],
            "role": role,
            "token_version": 0,
            "created_at": now_ms(),
        }
        try:
            await self.users.insert_one(document, session=self.session)
        except DuplicateKeyError as exc:
            raise EmailTakenError from exc
        return _to_user(document)

    async def get(self, user_id: UUID) -> User | None:
        document = await self.users.find_one({"id": str(user_id)}, session=self.session)
        return _to_user(document) if document else None

    async def by_email(self, email: str) -> User | None:
        document = await self.users.find_one({"email": email}, session=self.session)
        return _to_user(document) if document else None

    async def by_ids(self, user_ids: Sequence[UUID]) -> list[User]:
        cursor = self.users.find(
            {"id": {"$in": [str(user_id) for user_id in user_ids]}}, session=self.session
        )
        return [_to_user(document) async for document in cursor]

    async def set_password(
        self, user_id: UUID, *, password_hash: str, previous: Sequence[str]
    ) -> None:
        await self.users.update_one(
            {"id": str(user_id)},
            {"$set": {"password_hash": password_hash, "previous_password_hashes": list(previous)}},
            session=self.session,
        )

    async def set_role(self, user_id: UUID, role: Role) -> None:
        await self.users.update_one(
            {"id": str(user_id)}, {"$set": {"role": role}}, session=self.session
        )

    async def raise_token_version(self, user_id: UUID) -> None:
        await self.users.update_one(
            {"id": str(user_id)}, {"$inc": {"token_version": 1}}, session=self.session
        )

    async def anonymise(self, user_id: UUID, *, email: str, password_hash: str) -> None:
        await self.users.update_one(
            {"id": str(user_id)},
            {
                "$set": {
                    "email": email,
                    "password_hash": password_hash,
                    "previous_password_hashes": [],
                }
            },
            session=self.session,
        )

    async def page(
        self,
        *,
        after: UUID | None,
        limit: int,
        before: UUID | None = None,
        descending: bool = False,
    ) -> list[User]:
        bounds: dict[str, str] = {}
        if after is not None:
            bounds["$lt" if descending else "$gt"] = str(after)
        if before is not None:
            bounds["$gt" if descending else "$lt"] = str(before)
        query = {"id": bounds} if bounds else {}
        order = DESCENDING if descending else ASCENDING
        cursor = self.users.find(query, session=self.session).sort("id", order).limit(limit)
        return [_to_user(document) async for document in cursor]
