"""MongoDB through PyMongo's async client.

A unit of work here is not a multi-document transaction: those need a replica
set. Each write is atomic on its own document, and the events are handed on
after the work completes.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from app.events.schemas import DomainEvent
from app.settings import MongodbSettings
from app.storage.mongodb.items import Document, MongoItemRepository, create_item_indexes
from app.storage.mongodb.users import MongoUserRepository, create_user_indexes
from app.storage.unit_of_work import AfterCommit

# Runs when the work is done, before events are handed on, with the events it emitted.
BeforeCommit = Callable[[AsyncDatabase[Document], Sequence[DomainEvent]], Awaitable[None]]
IndexSetup = Callable[[AsyncDatabase[Document]], Awaitable[None]]


class MongoUnitOfWork:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.items = MongoItemRepository(db["items"])
        self.users = MongoUserRepository(db["users"])
        self.events: list[DomainEvent] = []

    def emit(self, event: DomainEvent) -> None:
        self.events.append(event)


class _CommandCounter(monitoring.CommandListener):
    # The driver's own handshakes and heartbeats are not the application's queries.
    IGNORED = frozenset({"hello", "ismaster", "ping", "endsessions", "saslstart", "saslcontinue"})

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name.lower() not in self.IGNORED:
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class MongoDatabase:
    def __init__(self, settings: MongodbSettings, *, after_commit: AfterCommit) -> None:
        self._commands = _CommandCounter()
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.url,
            event_listeners=[self._commands],
            tz_aware=True,
            serverSelectionTimeoutMS=settings.timeout_ms,
        )
        self.db: AsyncDatabase[Document] = self.client.get_default_database()
        self.before_commit: list[BeforeCommit] = []
        self.index_setups: list[IndexSetup] = [
            lambda db: create_item_indexes(db["items"]),
            lambda db: create_user_indexes(db["users"]),
        ]
        self.after_commit = after_commit

    @property
    def round_trips(self) -> int:
        return self._commands.count

    async def connect(self) -> None:
        # Indexes are created at startup: creating an existing index is a no-op.
        for setup in self.index_setups:
            await setup(self.db)

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> bool:
        reply: dict[str, Any] = await self.db.command("ping")
        return bool(reply.get("ok"))

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[MongoUnitOfWork]:
        uow = MongoUnitOfWork(self.db)
        yield uow
        for hook in self.before_commit:
            await hook(self.db, uow.events)
        if uow.events:
            await self.after_commit(uow.events)
