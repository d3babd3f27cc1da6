"""MongoDB through PyMongo's async client.

A unit of work is a multi-document transaction when the server supports them (a
replica set or a sharded cluster): the changes, whatever the before-commit hooks
write, and the outbox events commit together. On a standalone server each write is atomic on
its own document, and the events follow the change (see outbox.py).
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import structlog
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

from app.core.breakers import CircuitBreaker, guarded
from app.core.errors import ServiceUnavailableError
from app.events.schemas import DomainEvent
from app.settings import MongodbSettings
from app.storage.mongodb.items import (
    AfterCommit,
    Document,
    MongoItemRepository,
    create_item_indexes,
)
from app.storage.mongodb.outbox import MongoOutbox, add_to_outbox, create_outbox_indexes
from app.storage.mongodb.users import MongoUserRepository, create_user_indexes
from app.storage.unit_of_work import OnCommit, ReadOnlyError

log = structlog.get_logger(__name__)

# Runs with the unit of work's events before it completes, in its transaction if any.
BeforeCommit = Callable[[AsyncClientSession | None, Sequence[DomainEvent]], Awaitable[None]]
IndexSetup = Callable[[AsyncDatabase[Document]], Awaitable[None]]


class MongoUnitOfWork:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        session: AsyncClientSession | None,
        *,
        read_only: bool = False,
    ) -> None:
        self.session = session
        # Checks that need the writes committed first (MongoItemRepository.add).
        self.after_commit: list[AfterCommit] = []
        self.items = MongoItemRepository(db["items"], session, self.after_commit)
        self.users = MongoUserRepository(db["users"], session)
        self.events: list[DomainEvent] = []
        self.read_only = read_only

    def emit(self, event: DomainEvent) -> None:
        if self.read_only:
            raise ReadOnlyError
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


class _PoolCounter(monitoring.ConnectionPoolListener):
    """Connections checked out of the driver's pools right now."""

    def __init__(self) -> None:
        self.in_use = 0

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self.in_use += 1

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self.in_use -= 1

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        pass

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        pass

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        pass

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        pass


class StandaloneServerError(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "refusing to start in production on a standalone MongoDB server: without "
            "transactions a change and the events (and records) it writes are separate "
            "writes, and a crash or a timeout between them loses the latter. Run a replica "
            "set, even of one node, or set MONGODB_ALLOW_STANDALONE=true to accept that."
        )


class MongoDatabase:
    def __init__(self, settings: MongodbSettings) -> None:
        self._commands = _CommandCounter()
        self._connections = _PoolCounter()
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.url,
            event_listeners=[self._commands, self._connections],
            tz_aware=True,
            serverSelectionTimeoutMS=settings.timeout_ms,
            connectTimeoutMS=settings.timeout_ms,
        )
        self.db: AsyncDatabase[Document] = self.client.get_default_database()
        self.before_commit: list[BeforeCommit] = []
        self.on_commit: list[OnCommit] = []
        self.index_setups: list[IndexSetup] = [
            lambda db: create_item_indexes(db["items"]),
            lambda db: create_user_indexes(db["users"]),
            create_outbox_indexes,
        ]
        self.outbox = MongoOutbox(self.db)
        self.transactions = False
        # Replaced by the composition root with one built from the settings.
        self.breaker = CircuitBreaker("database")

    @property
    def round_trips(self) -> int:
        return self._commands.count

    @property
    def connections_in_use(self) -> int:
        return self._connections.in_use

    async def connect(self) -> None:
        # Indexes are created at startup: creating an existing index is a no-op.
        for setup in self.index_setups:
            await setup(self.db)
        hello: dict[str, Any] = await self.db.command("hello")
        self.transactions = "setName" in hello or hello.get("msg") == "isdbgrid"

    def check_transactions(self, *, production: bool, allow_standalone: bool) -> None:
        """At every start of the service (not of a command, whose output is its answer):
        without transactions a change and the events (and records) it writes are separate
        writes, and a crash or a timeout between them loses the latter. Production
        refuses that unless `MONGODB_ALLOW_STANDALONE` accepts it; otherwise it is said."""
        if self.transactions:
            return
        if production and not allow_standalone:
            raise StandaloneServerError
        log.warning(
            "mongodb_without_transactions",
            reason="a standalone server: run a replica set, even of one node",
        )

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> bool:
        reply: dict[str, Any] = await self.db.command("ping")
        return bool(reply.get("ok"))

    @guarded
    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[MongoUnitOfWork]:
        try:
            if read_only:
                yield MongoUnitOfWork(self.db, None, read_only=True)
                return
            async with AsyncExitStack() as stack:
                session = None
                if self.transactions:
                    session = await stack.enter_async_context(self.client.start_session())
                    await stack.enter_async_context(await session.start_transaction())
                uow = MongoUnitOfWork(self.db, session)
                yield uow
                for hook in self.before_commit:
                    await hook(session, uow.events)
                await add_to_outbox(self.db, session, uow.events)
            if uow.events:
                for notify in self.on_commit:
                    notify()
            # Committed: now the checks that must see the writes committed.
            for check in uow.after_commit:
                await check()
        except ConnectionFailure as exc:
            # No server answered within MONGODB_TIMEOUT_MS. The driver reconnects by
            # itself when one is back.
            raise ServiceUnavailableError("database") from exc
