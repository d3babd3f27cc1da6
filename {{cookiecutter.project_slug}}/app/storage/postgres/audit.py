"""The audit trail in PostgreSQL: rows are appended in the transaction they describe.

The migration adds triggers that reject UPDATE and TRUNCATE, and DELETE of any row
not older than the cut-off a retention purge declares in its own transaction.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Select, String, delete, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.audit.records import (
    GENESIS,
    AuditEntry,
    AuditQuery,
    ChainReport,
    PurgeReport,
    SealedEntry,
    entries_for,
    plan_purge,
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
    resource_id: Mapped[str | None] = mapped_column(String(64), index=True)
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
        # Re-entrant: a purge holding the lock may append.
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
        return await self.query(AuditQuery(), before_sequence=None, limit=limit)

    async def query(
        self, query: AuditQuery, *, before_sequence: int | None, limit: int
    ) -> list[SealedEntry]:
        statement = _filtered(select(AuditLogRow), query)
        if before_sequence is not None:
            statement = statement.where(AuditLogRow.sequence < before_sequence)
        statement = statement.order_by(AuditLogRow.sequence.desc()).limit(limit)
        async with self.database.sessions() as session:
            return [_sealed(row) for row in await session.scalars(statement)]

    async def _chain(self, session: AsyncSession) -> list[SealedEntry]:
        rows = await session.scalars(select(AuditLogRow).order_by(AuditLogRow.sequence))
        return [_sealed(row) for row in rows]

    async def verify(self) -> ChainReport:
        async with self.database.sessions() as session:
            return verify_chain(self.key, await self._chain(session))

    async def purge(self, *, before: datetime) -> PurgeReport:
        async with self.database.sessions() as session, session.begin():
            # Holds appends off, so the plan still holds when the rows go.
            await session.execute(select(func.pg_advisory_xact_lock(_CHAIN_LOCK)))
            plan = plan_purge(self.key, await self._chain(session), before=before)
            # The trigger lets this transaction delete rows older than the cut-off, no others.
            await session.execute(
                select(func.set_config("audit.purge_before", before.isoformat(), True))
            )
            await session.execute(delete(AuditLogRow).where(AuditLogRow.sequence <= plan.through))
            await self.append(session, [plan.record])
        return PurgeReport(removed=plan.removed, before=before)


def _filtered(statement: Select[Any], query: AuditQuery) -> Select[Any]:
    for field in ("actor", "action", "resource_type", "resource_id"):
        if (value := getattr(query, field)) is not None:
            statement = statement.where(getattr(AuditLogRow, field) == value)
    if query.since is not None:
        statement = statement.where(AuditLogRow.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditLogRow.occurred_at < query.until)
    return statement
