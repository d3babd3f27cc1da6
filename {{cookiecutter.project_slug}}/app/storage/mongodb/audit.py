"""The audit trail in MongoDB.

Records are inserted unsealed with the change (in its transaction on a replica set),
numbered from a counter, with no lock. One sealer at a time, holding a lease (a
compare-and-set on the lease document's owner and expiry), seals them in batches. Each
round (and each purge) takes the lease as an owner of its own, so two rounds exclude
each other in one process as they do across processes.
The unique index on `position` fences it: a sealer that lost its lease and still
writes collides with the positions its successor wrote, and its batch stops.

Nothing in MongoDB can stop a user with write access from deleting records, so
detection is the protection: positions without gaps, the checkpoints kept outside the
database, and a sealer that refuses to extend a chain that no longer reaches the last
head it sealed or the last checkpoint (see `ChainTruncatedError`).
"""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.audit.metrics import APPENDED
from app.audit.records import (
    PURGE,
    AuditEntry,
    AuditQuery,
    ChainReport,
    ChainTruncatedError,
    Checkpoint,
    Head,
    PurgeReport,
    SealedEntry,
    SealRound,
    entries_for,
    plan_purge,
    seal_batch,
    stored_record,
    verify_chain,
)
from app.core.errors import ServiceUnavailableError
from app.events.schemas import DomainEvent
from app.storage.mongodb.database import MongoDatabase
from app.storage.mongodb.items import Document
from app.storage.mongodb.lease import MongoLease

COLLECTION = "audit_log"
LEASE_ID = "audit-sealer"
LEASE = timedelta(seconds=30)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PURGE_LEASE_ATTEMPTS = 100
_PURGE_BATCH = 1000


def _stored(document: Document) -> SealedEntry:
    return stored_record(
        document.get("sequence"),
        document,
        position=document.get("position"),
        previous=document.get("previous"),
        seal=document.get("seal"),
    )


class MongoAuditLog:
    def __init__(self, database: MongoDatabase, *, key: bytes) -> None:
        self.database = database
        self.collection = database.db[COLLECTION]
        self.key = key

    async def create_indexes(self, _: AsyncDatabase[Document]) -> None:
        await self.collection.create_index("sequence", unique=True, name="uq_audit_sequence")
        # Sparse: unsealed records have no position yet.
        await self.collection.create_index(
            "position", unique=True, sparse=True, name="uq_audit_position"
        )
        # The sealer's work list, by a plain equality (as the outbox's `sent`).
        await self.collection.create_index(
            [("sealed", ASCENDING), ("sequence", ASCENDING)], name="ix_audit_sealed_sequence"
        )
        await self.collection.create_index("occurred_at", name="ix_audit_occurred_at")
        await self.collection.create_index("actor", name="ix_audit_actor")
        await self.collection.create_index("action", name="ix_audit_action")
        await self.collection.create_index("resource_id", name="ix_audit_resource_id")

    async def _next_sequences(self, count: int, session: AsyncClientSession | None) -> int:
        counter = await self.database.db["counters"].find_one_and_update(
            {"_id": COLLECTION},
            {"$inc": {"value": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if counter is None:  # an upsert returning the new document always finds one
            raise RuntimeError("the audit sequence counter is missing")
        return int(counter["value"]) - count + 1

    async def append(
        self, entries: Sequence[AuditEntry], session: AsyncClientSession | None = None
    ) -> None:
        if not entries:
            return
        first = await self._next_sequences(len(entries), session)
        documents = [
            entry.model_dump() | {"sequence": first + offset, "sealed": False}
            for offset, entry in enumerate(entries)
        ]
        await self.collection.insert_many(documents, session=session)

    async def record_events(
        self, session: AsyncClientSession | None, events: Sequence[DomainEvent]
    ) -> None:
        entries = entries_for(events)
        await self.append(entries, session)
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
        conditions = _conditions(query)
        if resource_ids:
            conditions["resource_id"] = {"$in": list(resource_ids)}
        bounds: dict[str, int] = {}
        if before_sequence is not None:
            bounds["$lt"] = before_sequence
        if after_sequence is not None:
            bounds["$gt"] = after_sequence
        if bounds:
            conditions["sequence"] = bounds
        order = ASCENDING if oldest_first else DESCENDING
        cursor = self.collection.find(conditions).sort("sequence", order).limit(limit)
        return [_stored(document) async for document in cursor]

    def _lease(self) -> MongoLease:
        """A new owner of the sealer's lease: one per round, never renewed by another."""
        return MongoLease(self.database.db, LEASE_ID)

    async def _head(self) -> Head:
        document = await self.collection.find_one(
            {"position": {"$exists": True}}, sort=[("position", DESCENDING)]
        )
        return Head(document["position"], document["seal"]) if document else Head()

    async def _anchor(self) -> int:
        document = await self.collection.find_one(
            {"action": PURGE, "position": {"$exists": True}}, sort=[("position", DESCENDING)]
        )
        return int(document["detail"]["anchor_position"]) if document else 0

    async def _check_reaches(self, head: Head, expect: Head) -> None:
        if expect.position == 0 or (head.position, head.seal) == (expect.position, expect.seal):
            return
        if head.position > expect.position:
            found = await self.collection.find_one({"position": expect.position})
            if found is not None and found.get("seal") == expect.seal:
                return
            if found is None and await self._anchor() >= expect.position:
                return  # purged since
        raise ChainTruncatedError(
            f"the stored chain ends at position {head.position} and does not hold position "
            f"{expect.position} as sealed: records were removed"
        )

    async def _seal(self, *, limit: int, expect: Head | None) -> SealRound:
        head = await self._head()
        if expect is not None:
            await self._check_reaches(head, expect)
        cursor = self.collection.find({"sealed": False}).sort("sequence", ASCENDING).limit(limit)
        # A purge record is sealed by the purge; one left unsealed was not written by it.
        pending = [_stored(d) async for d in cursor if d["action"] != PURGE]
        batch = seal_batch(self.key, head, pending)
        if batch:
            updates = [
                UpdateOne(
                    {"sequence": record.sequence, "sealed": False},
                    {
                        "$set": {
                            "sealed": True,
                            "position": record.position,
                            "previous": record.previous,
                            "seal": record.seal,
                        }
                    },
                )
                for record in batch
            ]
            try:
                result = await self.collection.bulk_write(updates, ordered=True)
            except (BulkWriteError, DuplicateKeyError) as exc:
                # Another sealer wrote these positions: this one's lease had lapsed.
                raise ServiceUnavailableError("audit sealer lease") from exc
            if result.matched_count != len(batch):
                raise ServiceUnavailableError("audit sealer lease")
            head = Head(batch[-1].position or 0, batch[-1].seal or "")
        return SealRound(sealed=len(batch), head=head, purged_through=await self._anchor())

    async def oldest_unsealed(self) -> datetime | None:
        document = await self.collection.find_one(
            {"sealed": False}, sort=[("sequence", ASCENDING)], projection={"occurred_at": 1}
        )
        oldest = document.get("occurred_at") if document else None
        # A value that is no time (written behind the service's back): as old as can be.
        return oldest if isinstance(oldest, datetime) or document is None else EPOCH

    async def seal_pending(self, *, limit: int, expect: Head | None = None) -> SealRound | None:
        lease = self._lease()
        refused = False
        try:
            if await lease.take(LEASE.total_seconds()) is None:
                refused = True
                return None
            return await self._seal(limit=limit, expect=expect)
        finally:
            if not refused:
                # Also when cancelled while taking it (a stopping sealer): the server may
                # have granted it, and no later round of this owner would give it back.
                await lease.release()

    async def _chain(self) -> list[SealedEntry]:
        return [_stored(document) async for document in self.collection.find()]

    async def verify(
        self, *, checkpoints: Sequence[Checkpoint] = (), window: timedelta | None = None
    ) -> ChainReport:
        records = await self._chain()
        return verify_chain(self.key, records, checkpoints=checkpoints, window=window)

    async def purge(self, *, before: datetime) -> PurgeReport:
        lease = self._lease()
        try:
            for _ in range(PURGE_LEASE_ATTEMPTS):
                if await lease.take(LEASE.total_seconds()) is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                raise ServiceUnavailableError("audit sealer lease")
            while (await self._seal(limit=_PURGE_BATCH, expect=None)).sealed:
                pass
            sealed = [record for record in await self._chain() if record.position is not None]
            plan = plan_purge(self.key, sealed, before=before)
            # A prefix of the chain, all older than `before` (see plan_purge). Without
            # transactions, a failure before the purge record is written shows up in
            # `verify` as missing positions.
            if plan.removed:
                await self.collection.delete_many({"position": {"$lte": plan.through}})
            (record,) = seal_batch(self.key, await self._head(), [SealedEntry(0, plan.record)])
            sequence = await self._next_sequences(1, None)
            await self.collection.insert_one(
                plan.record.model_dump()
                | {
                    "sequence": sequence,
                    "sealed": True,
                    "position": record.position,
                    "previous": record.previous,
                    "seal": record.seal,
                }
            )
        finally:
            await lease.release()
        head = Head(record.position or 0, record.seal or "")
        return PurgeReport(
            removed=plan.removed, before=before, head=head, purged_through=plan.through
        )


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
