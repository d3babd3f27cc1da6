"""The audit trail in PostgreSQL.

Records are inserted unsealed in the transaction they describe, with no lock: audited
writes do not wait for each other. One sealer at a time (a transaction-scoped advisory
lock, held by the sealer's own transaction) seals the committed ones in batches.

Sealing goes in commit order, not identity order: identity values are handed out
before commit, so a transaction can commit record 11 before record 10. The sealer
seals whatever is committed and still unsealed, lowest sequence first; a record that
commits late is simply sealed in a later batch, at a later position. Nothing waits for
a settle time, and no record is skipped.

The migration gives the application's role no UPDATE, DELETE or TRUNCATE on the table:
sealing goes through `audit_seal()`, which only fills the seal of an unsealed record,
and removal through `audit_purge()`, which removes only sealed records older than the
legal minimum retention the database itself holds (`audit_legal_minimum()`). Both run
as the table's owner (SECURITY DEFINER); a trigger refuses every other change.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    Select,
    String,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.audit.metrics import APPENDED
from app.audit.records import (
    PURGE,
    AuditEntry,
    AuditQuery,
    ChainReport,
    ChainTruncatedError,
    Checkpoint,
    Head,
    PurgeRefusedError,
    PurgeReport,
    SealedEntry,
    SealRound,
    entries_for,
    plan_purge,
    seal_batch,
    stored_record,
    verify_chain,
)
from app.events.schemas import DomainEvent
from app.storage.postgres.database import PostgresDatabase
from app.storage.postgres.models import Base, table_of

# One sealer at a time; the purge takes it too, so it sees the chain whole.
SEALER_LOCK = 0x61756469  # "audi"
_PURGE_BATCH = 1000


class AuditLogRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        # The sealer's work list: only the few unsealed records are in it.
        Index("ix_audit_log_unsealed", "sequence", postgresql_where=text("position IS NULL")),
    )

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
    # Filled once by the sealer; unique, so two sealers can never fork the chain.
    position: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    previous: Mapped[str | None] = mapped_column(String(64))
    seal: Mapped[str | None] = mapped_column(String(64))


AUDIT_LOG = table_of(AuditLogRow)
# Inline: nothing reads the new records' sequences, so the INSERT returns nothing.
APPEND = insert(AUDIT_LOG).inline()


def _stored(row: AuditLogRow) -> SealedEntry:
    return stored_record(
        row.sequence,
        row,
        position=row.position,
        previous=row.previous,
        seal=row.seal,
        from_attributes=True,
    )


_SEAL = text(
    "SELECT audit_seal(CAST(:sequences AS bigint[]), CAST(:positions AS bigint[]), "
    "CAST(:previous AS text[]), CAST(:seals AS text[]))"
)
_PURGE = text("SELECT audit_purge(:before, :through)")


class PostgresAuditLog:
    def __init__(self, database: PostgresDatabase, *, key: bytes) -> None:
        self.database = database
        self.key = key

    async def append(self, connection: AsyncConnection, entries: Sequence[AuditEntry]) -> None:
        # Unsealed, and no lock: the sealer chains them after commit. Plain rows in one
        # INSERT into the table, as for the outbox.
        if entries:
            rows = [entry.model_dump() for entry in entries]
            await connection.execute(APPEND, rows)

    async def record_events(
        self, connection: AsyncConnection, events: Sequence[DomainEvent]
    ) -> None:
        entries = entries_for(events)
        await self.append(connection, entries)
        APPENDED.inc(len(entries))

    async def recent(self, *, limit: int) -> list[SealedEntry]:
        return await self.query(AuditQuery(), before_sequence=None, limit=limit)

    async def query(
        self,
        query: AuditQuery,
        *,
        before_sequence: int | None,
        limit: int,
        after_sequence: int | None = None,
        oldest_first: bool = False,
        resource_ids: Sequence[str] = (),
    ) -> list[SealedEntry]:
        statement = _filtered(select(AuditLogRow), query)
        if resource_ids:
            statement = statement.where(AuditLogRow.resource_id.in_(resource_ids))
        if before_sequence is not None:
            statement = statement.where(AuditLogRow.sequence < before_sequence)
        if after_sequence is not None:
            statement = statement.where(AuditLogRow.sequence > after_sequence)
        order = AuditLogRow.sequence if oldest_first else AuditLogRow.sequence.desc()
        statement = statement.order_by(order).limit(limit)
        async with self.database.sessions() as session:
            return [_stored(row) for row in await session.scalars(statement)]

    async def _head(self, session: AsyncSession) -> Head:
        row = (
            await session.execute(
                select(AuditLogRow.position, AuditLogRow.seal)
                .where(AuditLogRow.position.is_not(None))
                .order_by(AuditLogRow.position.desc())
                .limit(1)
            )
        ).first()
        return Head(row.position, row.seal) if row else Head()

    async def _anchor(self, session: AsyncSession) -> int:
        detail = await session.scalar(
            select(AuditLogRow.detail)
            .where(AuditLogRow.action == PURGE, AuditLogRow.position.is_not(None))
            .order_by(AuditLogRow.position.desc())
            .limit(1)
        )
        return int(detail["anchor_position"]) if detail else 0

    async def _check_reaches(self, session: AsyncSession, head: Head, expect: Head) -> None:
        if expect.position == 0 or (head.position, head.seal) == (expect.position, expect.seal):
            return
        if head.position > expect.position:
            found = await session.scalar(
                select(AuditLogRow.seal).where(AuditLogRow.position == expect.position)
            )
            if found == expect.seal:
                return
            if found is None and await self._anchor(session) >= expect.position:
                return  # purged since
        raise ChainTruncatedError(
            f"the stored chain ends at position {head.position} and does not hold position "
            f"{expect.position} as sealed: records were removed"
        )

    async def _seal(self, session: AsyncSession, *, limit: int, expect: Head | None) -> SealRound:
        head = await self._head(session)
        if expect is not None:
            await self._check_reaches(session, head, expect)
        rows = await session.scalars(
            select(AuditLogRow)
            # A purge record is sealed by the purge; one left unsealed was not written by it.
            .where(AuditLogRow.position.is_(None), AuditLogRow.action != PURGE)
            .order_by(AuditLogRow.sequence)
            .limit(limit)
        )
        batch = seal_batch(self.key, head, [_stored(row) for row in rows])
        if batch:
            await _store_seals(session, batch)
            last = batch[-1]
            head = Head(last.position or 0, last.seal or "")
        return SealRound(sealed=len(batch), head=head, purged_through=await self._anchor(session))

    async def seal_pending(self, *, limit: int, expect: Head | None = None) -> SealRound | None:
        async with self.database.sessions() as session, session.begin():
            # Held by this transaction only: a sealer that dies loses it with its connection.
            if not await session.scalar(select(func.pg_try_advisory_xact_lock(SEALER_LOCK))):
                return None
            return await self._seal(session, limit=limit, expect=expect)

    async def oldest_unsealed(self) -> datetime | None:
        async with self.database.sessions() as session:
            oldest: datetime | None = await session.scalar(
                select(func.min(AuditLogRow.occurred_at)).where(AuditLogRow.position.is_(None))
            )
        return oldest

    async def verify(
        self, *, checkpoints: Sequence[Checkpoint] = (), window: timedelta | None = None
    ) -> ChainReport:
        async with self.database.sessions() as session:
            # One statement: one snapshot of the whole table.
            rows = await session.scalars(select(AuditLogRow).order_by(AuditLogRow.sequence))
            records = [_stored(row) for row in rows]
        return verify_chain(self.key, records, checkpoints=checkpoints, window=window)

    async def purge(self, *, before: datetime) -> PurgeReport:
        async with self.database.sessions() as session, session.begin():
            await session.execute(select(func.pg_advisory_xact_lock(SEALER_LOCK)))
            while (await self._seal(session, limit=_PURGE_BATCH, expect=None)).sealed:
                pass
            rows = await session.scalars(
                select(AuditLogRow)
                .where(AuditLogRow.position.is_not(None))
                .order_by(AuditLogRow.position)
            )
            plan = plan_purge(self.key, [_stored(row) for row in rows], before=before)
            if plan.removed:
                try:
                    async with session.begin_nested():
                        await session.execute(_PURGE, {"before": before, "through": plan.through})
                except DBAPIError as exc:
                    raise PurgeRefusedError(str(exc.orig).splitlines()[-1]) from exc
            # Inserted unsealed, then sealed through audit_seal() as every record is: the
            # database refuses a record inserted sealed.
            row = AuditLogRow(**plan.record.model_dump())
            session.add(row)
            await session.flush()
            (record,) = seal_batch(
                self.key, await self._head(session), [SealedEntry(row.sequence, plan.record)]
            )
            await _store_seals(session, [record])
            head = Head(record.position or 0, record.seal or "")
        return PurgeReport(
            removed=plan.removed, before=before, head=head, purged_through=plan.through
        )


async def _store_seals(session: AsyncSession, batch: Sequence[SealedEntry]) -> None:
    count = await session.scalar(
        _SEAL,
        {
            "sequences": [record.sequence for record in batch],
            "positions": [record.position for record in batch],
            "previous": [record.previous for record in batch],
            "seals": [record.seal for record in batch],
        },
    )
    if count != len(batch):  # only this transaction seals: cannot happen
        raise RuntimeError("audit records changed while being sealed")


def _filtered(statement: Select[Any], query: AuditQuery) -> Select[Any]:
    for field in ("actor", "action", "resource_type", "resource_id"):
        if (value := getattr(query, field)) is not None:
            statement = statement.where(getattr(AuditLogRow, field) == value)
    if query.since is not None:
        statement = statement.where(AuditLogRow.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditLogRow.occurred_at < query.until)
    return statement
