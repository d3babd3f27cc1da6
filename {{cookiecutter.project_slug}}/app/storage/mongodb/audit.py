"""The audit trail in MongoDB.

The application has no code path that updates or deletes audit documents; an
edit made behind its back is caught by `verify`. Appends from this process take
turns (a lock); between processes the unique sequence index makes two appends race
safely: the loser re-reads the head and retries after a short random pause.
"""

import asyncio
import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
from app.core.errors import ServiceUnavailableError
from app.events.schemas import DomainEvent
from app.storage.mongodb.database import MongoDatabase
from app.storage.mongodb.items import Document

COLLECTION = "audit_log"
APPEND_ATTEMPTS = 20
RETRY_PAUSE_SECONDS = 0.01


def _sealed(document: Document) -> SealedEntry:
    entry = AuditEntry.model_validate(document)
    return SealedEntry(
        sequence=document["sequence"],
        entry=entry,
        previous=document["previous"],
        seal=document["seal"],
    )


class MongoAuditLog:
    def __init__(self, database: MongoDatabase, *, key: bytes) -> None:
        self.database = database
        self.collection = database.db[COLLECTION]
        self.key = key
        self._turn = asyncio.Lock()

    async def create_indexes(self, _: AsyncDatabase[Document]) -> None:
        await self.collection.create_index("sequence", unique=True, name="uq_audit_sequence")
        await self.collection.create_index("occurred_at", name="ix_audit_occurred_at")
        await self.collection.create_index("actor", name="ix_audit_actor")
        await self.collection.create_index("action", name="ix_audit_action")
        await self.collection.create_index("resource_id", name="ix_audit_resource_id")

    async def append(
        self, entries: Sequence[AuditEntry], session: AsyncClientSession | None = None
    ) -> None:
        async with self._turn:
            for entry in entries:
                await self._append_one(entry, session)

    async def _append_one(self, entry: AuditEntry, session: AsyncClientSession | None) -> None:
        for _ in range(APPEND_ATTEMPTS):
            head = await self.collection.find_one(sort=[("sequence", DESCENDING)], session=session)
            previous = head["seal"] if head else GENESIS
            document = entry.model_dump() | {
                "sequence": head["sequence"] + 1 if head else 1,
                "previous": previous,
                "seal": seal(self.key, previous, entry),
            }
            try:
                await self.collection.insert_one(document, session=session)
                return
            except DuplicateKeyError:
                # Another process appended first.
                await asyncio.sleep(random.uniform(0, RETRY_PAUSE_SECONDS))  # noqa: S311
        raise ServiceUnavailableError("audit trail")

    async def record_events(
        self, session: AsyncClientSession | None, events: Sequence[DomainEvent]
    ) -> None:
        await self.append(entries_for(events), session)

    async def recent(self, *, limit: int) -> list[SealedEntry]:
        return await self.query(AuditQuery(), before_sequence=None, limit=limit)

    async def query(
        self, query: AuditQuery, *, before_sequence: int | None, limit: int
    ) -> list[SealedEntry]:
        conditions = _conditions(query)
        if before_sequence is not None:
            conditions["sequence"] = {"$lt": before_sequence}
        cursor = self.collection.find(conditions).sort("sequence", DESCENDING).limit(limit)
        return [_sealed(document) async for document in cursor]

    async def _chain(self, session: AsyncClientSession | None = None) -> list[SealedEntry]:
        cursor = self.collection.find(session=session).sort("sequence", ASCENDING)
        return [_sealed(document) async for document in cursor]

    async def verify(self) -> ChainReport:
        return verify_chain(self.key, await self._chain())

    async def purge(self, *, before: datetime) -> PurgeReport:
        # In one transaction on a replica set. On a standalone server a failure between the
        # delete and the append shows up in `verify` as a chain that fits no anchor.
        async with self.database.unit_of_work() as uow:
            plan = plan_purge(self.key, await self._chain(uow.session), before=before)
            # A prefix of the chain, all older than `before` (see plan_purge).
            await self.collection.delete_many(
                {"sequence": {"$lte": plan.through}}, session=uow.session
            )
            await self.append([plan.record], uow.session)
        return PurgeReport(removed=plan.removed, before=before)


def _conditions(query: AuditQuery) -> dict[str, Any]:
    conditions: dict[str, Any] = {
        field: value
        for field in ("actor", "action", "resource_type", "resource_id")
        if (value := getattr(query, field)) is not None
    }
    times = {
        operator: value
        for operator, value in (("$gte", query.since), ("$lt", query.until))
        if value is not None
    }
    if times:
        conditions["occurred_at"] = times
    return conditions
