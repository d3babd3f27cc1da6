"""The audit trail in MongoDB.

The application has no code path that updates or deletes audit documents; an
edit made behind its back is caught by `verify`. The unique sequence index makes
two concurrent appends race safely: the loser re-reads the head and retries.
"""

from collections.abc import Sequence

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
from app.storage.mongodb.database import MongoDatabase
from app.storage.mongodb.items import Document

COLLECTION = "audit_log"
APPEND_ATTEMPTS = 20


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

    async def create_indexes(self, _: AsyncDatabase[Document]) -> None:
        await self.collection.create_index("sequence", unique=True, name="uq_audit_sequence")
        await self.collection.create_index("occurred_at", name="ix_audit_occurred_at")
        await self.collection.create_index("actor", name="ix_audit_actor")
        await self.collection.create_index("action", name="ix_audit_action")

    async def append(
        self, entries: Sequence[AuditEntry], session: AsyncClientSession | None = None
    ) -> None:
        for entry in entries:
            for _ in range(APPEND_ATTEMPTS):
                head = await self.collection.find_one(
                    sort=[("sequence", DESCENDING)], session=session
                )
                previous = head["seal"] if head else GENESIS
                document = entry.model_dump() | {
                    "sequence": head["sequence"] + 1 if head else 1,
                    "previous": previous,
                    "seal": seal(self.key, previous, entry),
                }
                try:
                    await self.collection.insert_one(document, session=session)
                    break
                except DuplicateKeyError:
                    continue
            else:
                raise RuntimeError("audit trail is too busy: could not append a record")

    async def record_events(
        self, session: AsyncClientSession | None, events: Sequence[DomainEvent]
    ) -> None:
        await self.append(entries_for(events), session)

    async def recent(self, *, limit: int) -> list[SealedEntry]:
        cursor = self.collection.find().sort("sequence", DESCENDING).limit(limit)
        return [_sealed(document) async for document in cursor]

    async def verify(self) -> ChainReport:
        cursor = self.collection.find().sort("sequence", ASCENDING)
        return verify_chain(self.key, [_sealed(document) async for document in cursor])
