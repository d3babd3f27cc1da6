"""The audit trail in PostgreSQL: rows are appended in the transaction they describe.

The migration adds a trigger that rejects UPDATE and DELETE on the table.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, String, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.audit.records import (
    GENESIS,
    AuditEntry,
    ChainReport,
    SealedEntry,
    entries_for,
    seal,
    verify_chain,
)
from app.events.schemas import DomainEvent
from app.storage.postgres.database import PostgresDatabase
from app.storage.postgres.models import Base

# Serialises appends, so each record is chained to the one committed before it.
_CHAIN_LOCK = 0x61756469  # "audi"


class AuditLogRow(Base):
    __tablename__ = "audit_log"

    sequence: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)
    previous: Mapped[str] = mapped_column(String(64))
    seal: Mapped[str] = mapped_column(String(64))


def _sealed(row: AuditLogRow) -> SealedEntry:
    entry = AuditEntry.model_validate(row, from_attributes=True)
    return SealedEntry(sequence=row.sequence, entry=entry, previous=row.previous, seal=row.seal)


class PostgresAuditLog:
    def __init__(self, database: PostgresDatabase, *, key: bytes) -> None:
        self.database = database
        self.key = key

    async def append(self, session: AsyncSession, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        await session.execute(select(func.pg_advisory_xact_lock(_CHAIN_LOCK)))
        previous = await session.scalar(
            select(AuditLogRow.seal).order_by(AuditLogRow.sequence.desc()).limit(1)
        )
        previous = previous or GENESIS
        for entry in entries:
            current = seal(self.key, previous, entry)
            session.add(AuditLogRow(**entry.model_dump(), previous=previous, seal=current))
            previous = current
        await session.flush()

    async def record_events(self, session: AsyncSession, events: Sequence[DomainEvent]) -> None:
        await self.append(session, entries_for(events))

    async def recent(self, *, limit: int) -> list[SealedEntry]:
        async with self.database.sessions() as session:
            rows = await session.scalars(
                select(AuditLogRow).order_by(AuditLogRow.sequence.desc()).limit(limit)
            )
            return [_sealed(row) for row in rows]

    async def verify(self) -> ChainReport:
        async with self.database.sessions() as session:
            rows = await session.scalars(select(AuditLogRow).order_by(AuditLogRow.sequence))
            return verify_chain(self.key, [_sealed(row) for row in rows])
