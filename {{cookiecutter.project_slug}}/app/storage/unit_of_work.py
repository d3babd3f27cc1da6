"""What every database adapter offers the features: a unit of work and a health check."""

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from app.events.schemas import DomainEvent
from app.items.repository import ItemRepository
from app.users.repository import UserRepository

# Runs once the transaction is committed, with the events it emitted.
AfterCommit = Callable[[Sequence[DomainEvent]], Awaitable[None]]


class UnitOfWork(Protocol):
    @property
    def items(self) -> ItemRepository: ...

    @property
    def users(self) -> UserRepository: ...

    def emit(self, event: DomainEvent) -> None:
        """Record an event; it is handed on only if the unit of work commits."""
        ...


class Database(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    @property
    def round_trips(self) -> int:
        """Statements or commands sent so far: what N+1 and cache tests count."""
        ...
