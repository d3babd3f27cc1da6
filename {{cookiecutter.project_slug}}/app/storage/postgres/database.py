"""PostgreSQL through SQLAlchemy 2 (async, asyncpg)."""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import cast

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlalchemy.pool import QueuePool

from app.core.breakers import CircuitBreaker, guarded
from app.core.errors import ServiceUnavailableError
from app.events.schemas import DomainEvent
from app.settings import DatabaseSettings
from app.storage.postgres.items import PostgresItemRepository
from app.storage.postgres.outbox import PostgresOutbox, add_to_outbox
from app.storage.postgres.users import PostgresUserRepository
from app.storage.unit_of_work import OnCommit, ReadOnlyError

# Runs inside the transaction, just before it commits, with the events it emitted.
BeforeCommit = Callable[[AsyncConnection, Sequence[DomainEvent]], Awaitable[None]]


# SQLSTATE classes of an unavailable server: connection exceptions, and operator
# intervention (shutting down, starting up, terminated by an administrator).
_OUTAGE_SQLSTATES = ("08", "57P")


def is_outage(exc: BaseException) -> bool:
    """The database cannot be reached, or dropped the connection: not a bad statement."""
    if isinstance(exc, OSError | TimeoutError | PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    return (
        exc.connection_invalidated
        or isinstance(exc, OperationalError | InterfaceError)
        or sqlstate.startswith(_OUTAGE_SQLSTATES)
    )


class PostgresUnitOfWork:
    # On a connection, not an ORM session: the repositories read and write plain rows
    # (SQLAlchemy Core), and a session's bookkeeping cost about 80 µs a unit of work.
    def __init__(self, connection: AsyncConnection, *, read_only: bool = False) -> None:
        self.connection = connection
        self.items = PostgresItemRepository(connection)
        self.users = PostgresUserRepository(connection)
        self.events: list[DomainEvent] = []
        self.read_only = read_only

    def emit(self, event: DomainEvent) -> None:
        if self.read_only:
            raise ReadOnlyError
        self.events.append(event)


class PostgresDatabase:
    def __init__(self, settings: DatabaseSettings) -> None:
        # Looked up now, not at import: with tracing on it is wrapped to trace the engine.
        self.engine = sqlalchemy_asyncio.create_async_engine(
            settings.url,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_pre_ping=settings.pool_pre_ping,
            pool_recycle=settings.pool_recycle_seconds,
            echo=settings.echo,
            connect_args={
                "timeout": settings.connect_timeout_seconds,
                "command_timeout": settings.command_timeout_seconds,
            },
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Work of one statement needs no transaction around it: in autocommit, the
        # statement is its own transaction, one round trip with no BEGIN and COMMIT (same
        # pool, same connections). For reads, and for the relay's single-statement writes.
        self.autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.round_trips = 0
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)
        self.before_commit: list[BeforeCommit] = []
        self.on_commit: list[OnCommit] = []
        self.outbox = PostgresOutbox(self.sessions, self.autocommit)
        # Replaced by the composition root with one built from the settings.
        self.breaker = CircuitBreaker("database")

    def _count(self, *_: object) -> None:
        self.round_trips += 1

    @property
    def connections_in_use(self) -> int:
        return cast(QueuePool, self.engine.pool).checkedout()

    async def connect(self) -> None:
        # Fail at startup, not at the first request, if the database is unreachable.
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        async with self.engine.connect() as connection:
            return bool(await connection.scalar(text("SELECT 1")) == 1)

    @guarded
    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[PostgresUnitOfWork]:
        try:
            if read_only:
                async with self.autocommit.connect() as connection:
                    yield PostgresUnitOfWork(connection, read_only=True)
                return
            async with self.engine.begin() as connection:
                uow = PostgresUnitOfWork(connection)
                yield uow
                for hook in self.before_commit:
                    await hook(connection, uow.events)
                await add_to_outbox(connection, uow.events)
        except Exception as exc:
            # Nothing was committed: the client may retry. The pool replaces the broken
            # connections, so the service recovers by itself when the database is back.
            if is_outage(exc):
                raise ServiceUnavailableError("database") from exc
            raise
        if uow.events:
            for notify in self.on_commit:
                notify()
