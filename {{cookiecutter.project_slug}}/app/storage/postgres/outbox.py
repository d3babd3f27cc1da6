"""The outbox in PostgreSQL: same transaction as the change, so exactly the
committed changes have events; one relay at a time, holding the `outbox-relay` lease
row, and its mark-sent statement checks that lease itself (see lease.py)."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.lease import LeaseLostError
from app.events.outbox import RELAY_LEASE, HeldEvent, OutboxMessage, redacted_payload
from app.events.schemas import DomainEvent, Envelope
from app.observability.tracing import outbox_trace_context
from app.storage.postgres.lease import HELD, PostgresLease
from app.storage.postgres.models import OutboxRow, table_of

OUTBOX = table_of(OutboxRow)
# Inline: nothing reads the new rows' sequences, so the INSERT returns nothing.
ADD = insert(OUTBOX).inline()
# The relay's statements, built once and their values bound at each round (see rows.py).
PENDING = OUTBOX.c.sent_at.is_(None)
CLAIM = select(OUTBOX).where(PENDING).order_by(OUTBOX.c.sequence).limit(bindparam("limit"))
# The lease is checked in the update's own WHERE: a relay whose lease lapsed, or was
# taken over, marks nothing, whatever it believes.
MARK_SENT = (
    update(OUTBOX)
    .where(OUTBOX.c.sequence.in_(bindparam("sequences", expanding=True)), HELD)
    .values(sent_at=func.now())
)


async def add_to_outbox(connection: AsyncConnection, events: Sequence[DomainEvent]) -> None:
    # One INSERT of plain rows into the table (SQLAlchemy Core), in the change's
    # transaction.
    if events:
        rows = [
            Envelope.of(event, traceparent=outbox_trace_context(event)).model_dump()
            for event in events
        ]
        await connection.execute(ADD, rows)


class PostgresOutboxBatch:
    def __init__(
        self, autocommit: AsyncEngine, held: dict[str, Any], messages: Sequence[OutboxMessage]
    ) -> None:
        self.autocommit = autocommit
        self.held = held
        self.messages = messages

    async def mark_sent(self, sequences: Sequence[int]) -> None:
        if not sequences:
            return
        async with self.autocommit.connect() as connection:
            result = await connection.execute(MARK_SENT, {"sequences": sequences, **self.held})
        if not result.rowcount:
            raise LeaseLostError(RELAY_LEASE)


def _message(row: Row[Any]) -> OutboxMessage:
    envelope = Envelope(
        event_id=row.event_id,
        event_type=row.event_type,
        aggregate_id=row.aggregate_id,
        correlation_id=row.correlation_id,
        payload=row.payload,
        traceparent=row.traceparent,
    )
    return OutboxMessage(sequence=row.sequence, envelope=envelope)


class PostgresOutbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], autocommit: AsyncEngine) -> None:
        # Everything but `forget` is one statement of SQLAlchemy Core on plain rows, run
        # in autocommit: its own transaction in one round trip. A relay round (lease,
        # claim, mark sent) is then three round trips.
        self.sessions = sessions
        self.autocommit = autocommit
        self.lease = PostgresLease(autocommit, RELAY_LEASE)

    @asynccontextmanager
    async def claim(
        self, limit: int, *, lease_seconds: float
    ) -> AsyncIterator[PostgresOutboxBatch | None]:
        fence = await self.lease.take(lease_seconds)
        if fence is None:
            yield None
            return
        async with self.autocommit.connect() as connection:
            rows = await connection.execute(CLAIM, {"limit": limit})
            messages = [_message(row) for row in rows]
        yield PostgresOutboxBatch(self.autocommit, self.lease.held(fence), messages)

    async def release(self) -> None:
        await self.lease.release()

    async def pending_count(self) -> int:
        async with self.autocommit.connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(OUTBOX).where(PENDING))
            return int(count or 0)

    async def pending_summary(self) -> tuple[int, datetime | None]:
        # One statement over the pending rows of the (sent_at, sequence) index.
        async with self.autocommit.connect() as connection:
            row = (
                await connection.execute(
                    select(func.count(), func.min(OUTBOX.c.created_at)).where(PENDING)
                )
            ).one()
            return int(row[0] or 0), row[1]

    async def purge_sent(self, *, sent_before: datetime, limit: int) -> int:
        # The oldest first, through the (sent_at, sequence) index; pending rows have no
        # sent_at and are never matched.
        batch = (
            select(OUTBOX.c.sequence)
            .where(OUTBOX.c.sent_at < sent_before)
            .order_by(OUTBOX.c.sent_at)
            .limit(limit)
        )
        async with self.autocommit.connect() as connection:
            result = await connection.execute(
                delete(OUTBOX).where(OUTBOX.c.sequence.in_(batch.scalar_subquery()))
            )
            return int(result.rowcount or 0)

    async def about(self, subject: str, aggregates: Sequence[str]) -> list[HeldEvent]:
        async with self.autocommit.connect() as connection:
            rows = await connection.execute(
                select(OUTBOX).where(_about(subject, aggregates)).order_by(OUTBOX.c.sequence)
            )
            return [
                HeldEvent(
                    event_id=str(row.event_id),
                    event_type=row.event_type,
                    created_at=row.created_at,
                    sent=row.sent_at is not None,
                    payload=row.payload,
                )
                for row in rows
            ]

    async def forget(self, subject: str, aggregates: Sequence[str]) -> int:
        async with self.sessions() as session, session.begin():
            deleted: Any = await session.execute(
                delete(OutboxRow).where(_about(subject, aggregates), OutboxRow.sent_at.is_not(None))
            )
            touched = int(deleted.rowcount or 0)
            pending = await session.scalars(
                select(OutboxRow)
                .where(_about(subject, aggregates), OutboxRow.sent_at.is_(None))
                .with_for_update()
            )
            for row in pending:
                payload = redacted_payload(row.payload)
                if payload != row.payload:
                    row.payload = payload
                    touched += 1
            return touched


def _about(subject: str, aggregates: Sequence[str]) -> ColumnElement[bool]:
    # The id is a UUID: no LIKE wildcard in it. The outbox holds a few days of events,
    # so the scan this needs stays bounded.
    return or_(
        OutboxRow.aggregate_id.in_([subject, *aggregates]),
        OutboxRow.payload.contains(subject, autoescape=True),
    )
