"""The outbox in PostgreSQL: same transaction as the change, so exactly the
committed changes have events; one relay at a time, by advisory lock."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.outbox import OutboxMessage
from app.events.schemas import DomainEvent, Envelope
from app.storage.postgres.models import OutboxRow

# Held for one batch: a second instance skips its round instead of racing (and
# reordering) the first.
_RELAY_LOCK = 0x6F757462  # "outb"


def add_to_outbox(session: AsyncSession, events: Sequence[DomainEvent]) -> None:
    for event in events:
        envelope = Envelope.of(event)
        session.add(OutboxRow(**envelope.model_dump()))


class PostgresOutboxBatch:
    def __init__(self, session: AsyncSession, messages: Sequence[OutboxMessage]) -> None:
        self.session = session
        self.messages = messages

    async def mark_sent(self, sequences: Sequence[int]) -> None:
        if sequences:
            await self.session.execute(
                update(OutboxRow)
                .where(OutboxRow.sequence.in_(sequences))
                .values(sent_at=func.now())
            )


def _message(row: OutboxRow) -> OutboxMessage:
    envelope = Envelope(
        event_id=row.event_id,
        event_type=row.event_type,
        aggregate_id=row.aggregate_id,
        correlation_id=row.correlation_id,
        payload=row.payload,
    )
    return OutboxMessage(sequence=row.sequence, envelope=envelope)


class PostgresOutbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[PostgresOutboxBatch | None]:
        async with self.sessions() as session, session.begin():
            if not await session.scalar(select(func.pg_try_advisory_xact_lock(_RELAY_LOCK))):
                yield None
                return
            rows = await session.scalars(
                select(OutboxRow)
                .where(OutboxRow.sent_at.is_(None))
                .order_by(OutboxRow.sequence)
                .limit(limit)
            )
            yield PostgresOutboxBatch(session, [_message(row) for row in rows])

    async def pending_count(self) -> int:
        async with self.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
            )
            return int(count or 0)
