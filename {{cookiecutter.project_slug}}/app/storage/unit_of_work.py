"""What every database adapter offers the features: a unit of work and a health check."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from app.core.breakers import CircuitBreaker
from app.events.outbox import Outbox
from app.events.schemas import DomainEvent
from app.items.repository import ItemRepository
from app.users.repository import UserRepository

# Told that a unit of work committed events (the outbox relay wakes up).
OnCommit = Callable[[], None]


class ReadOnlyError(RuntimeError):
    """An event emitted in a read-only unit of work: it would never be committed."""

    def __init__(self) -> None:
        super().__init__("a read-only unit of work cannot emit events")


class UnitOfWork(Protocol):
    @property
    def items(self) -> ItemRepository: ...

    @property
    def users(self) -> UserRepository: ...

    def emit(self, event: DomainEvent) -> None:
        """Record an event: it goes to the outbox with the changes, and only with them."""
        ...


class Database(Protocol):
    # Refuses units of work at once while the database is down (app/core/breakers.py).
    breaker: CircuitBreaker

    @property
    def outbox(self) -> Outbox: ...

    @property
    def on_commit(self) -> list[OnCommit]: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    def unit_of_work(self, *, read_only: bool = False) -> AbstractAsyncContextManager[UnitOfWork]:
        """Changes and the events they emit, committed together. `read_only` for reads
        that emit nothing: no transaction is opened for them, and emitting is an error."""
        ...

    @property
    def connections_in_use(self) -> int:
        """Connections checked out of the pool right now: zero when the service is idle."""
        ...

    @property
    def round_trips(self) -> int:
        """Statements or commands sent so far: what N+1 and cache tests count."""
        ...
