"""The outbox in MongoDB.

On a replica set (or sharded cluster) the outbox documents are inserted in the
same multi-document transaction as the change: exactly the committed changes
have events. A standalone server has no transactions; there the events are
inserted right after the change succeeds, so a crash in between can lose them
(at most once). Production MongoDB should run as a replica set, even of one node.
One relay at a time holds the `outbox-relay` lease (lease.py). Its claim stamps the
pending documents with the lease's fencing counter, unless a later holder already
stamped them, and marking sent needs the lease still held and the stamp unchanged: a
relay whose lease lapsed and was taken over marks nothing its successor claimed.
"""

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.core.lease import LeaseLostError
from app.events.outbox import RELAY_LEASE, HeldEvent, OutboxMessage, redacted_payload
from app.events.schemas import DomainEvent, Envelope
from app.observability.tracing import outbox_trace_context
from app.storage.mongodb.items import Document, now_ms
from app.storage.mongodb.lease import EPOCH, MongoLease


async def create_outbox_indexes(db: AsyncDatabase[Document]) -> None:
    outbox = db["outbox"]
    await outbox.create_index([("sequence", ASCENDING)], name="uq_outbox_sequence", unique=True)
    await outbox.create_index([("event_id", ASCENDING)], name="uq_outbox_event_id", unique=True)
    await outbox.create_index(
        [("sent", ASCENDING), ("sequence", ASCENDING)], name="ix_outbox_sent_sequence"
    )
    # The retention purge's query: sent events by when they were sent.
    await outbox.create_index([("sent_at_ms", ASCENDING)], name="ix_outbox_sent_at_ms")


async def add_to_outbox(
    db: AsyncDatabase[Document], session: AsyncClientSession | None, events: Sequence[DomainEvent]
) -> None:
    """The events, numbered in order: two round trips however many there are."""
    if not events:
        return
    counter = await db["counters"].find_one_and_update(
        {"_id": "outbox"},
        {"$inc": {"value": len(events)}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    if counter is None:  # an upsert returning the new document always finds one
        raise RuntimeError("the outbox sequence counter is missing")
    first = counter["value"] - len(events) + 1
    documents = [
        {
            **Envelope.of(event, traceparent=outbox_trace_context(event)).model_dump(mode="json"),
            "sequence": first + offset,
            "created_at": now_ms(),
            # A boolean flag, not a null date: the relay's query is a plain equality.
            "sent": False,
        }
        for offset, event in enumerate(events)
    ]
    await db["outbox"].insert_many(documents, session=session)


def _message(document: Document) -> OutboxMessage:
    fields = ("event_id", "event_type", "aggregate_id", "correlation_id", "payload")
    envelope = Envelope.model_validate(
        # Events written before the trace context was kept have none.
        {field: document[field] for field in fields} | {"traceparent": document.get("traceparent")}
    )
    return OutboxMessage(sequence=document["sequence"], envelope=envelope)


class MongoOutboxBatch:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        lease: MongoLease,
        fence: int,
        messages: Sequence[OutboxMessage],
    ) -> None:
        self.db = db
        self.lease = lease
        self.fence = fence
        self.messages = messages

    async def mark_sent(self, sequences: Sequence[int]) -> None:
        if not sequences:
            return
        if not await self.lease.holds(self.fence):
            raise LeaseLostError(RELAY_LEASE)
        sent_at = now_ms()
        # Only the documents this holder stamped: a successor's claim restamped the rest.
        result = await self.db["outbox"].update_many(
            {"sequence": {"$in": list(sequences)}, "relay_fence": self.fence},
            {"$set": {"sent": True, "sent_at": sent_at, "sent_at_ms": _epoch_ms(sent_at)}},
        )
        if not result.matched_count:
            raise LeaseLostError(RELAY_LEASE)


class MongoOutbox:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.lease = MongoLease(db, RELAY_LEASE)

    @asynccontextmanager
    async def claim(
        self, limit: int, *, lease_seconds: float
    ) -> AsyncIterator[MongoOutboxBatch | None]:
        fence = await self.lease.take(lease_seconds)
        if fence is None:
            yield None
            return
        outbox = self.db["outbox"]
        cursor = outbox.find({"sent": False}).sort("sequence", ASCENDING).limit(limit)
        messages = [_message(document) async for document in cursor]
        if messages:
            sequences = [m.sequence for m in messages]
            # Stamp what no newer holder stamped: never stamped, or by an older holder. Two
            # updates, not one with `$or`: the same documents, each filter a plain one on the
            # sequence index (the test suite's MongoDB stand-in cannot plan an `$or` and
            # reads the whole collection for it: 33 ms against 4 at 2000 documents).
            for stale in ({"$exists": False}, {"$lt": fence}):
                await outbox.update_many(
                    {"sequence": {"$in": sequences}, "relay_fence": stale},
                    {"$set": {"relay_fence": fence}},
                )
        yield MongoOutboxBatch(self.db, self.lease, fence, messages)

    async def release(self) -> None:
        await self.lease.release()

    async def pending_count(self) -> int:
        return await self.db["outbox"].count_documents({"sent": False})

    async def pending_summary(self) -> tuple[int, datetime | None]:
        # Both through the (sent, sequence) index: the oldest pending has the lowest sequence.
        count = await self.db["outbox"].count_documents({"sent": False})
        oldest = await self.db["outbox"].find_one(
            {"sent": False}, {"created_at": 1}, sort=[("sequence", ASCENDING)]
        )
        return count, _as_datetime(oldest.get("created_at")) if oldest else None

    async def purge_sent(self, *, sent_before: datetime, limit: int) -> int:
        # Pending documents have neither field and are never matched. The number is what
        # the purge compares (every MongoDB-compatible server compares numbers alike); the
        # date catches documents sent before the number was written.
        query = {
            "$or": [
                {"sent_at_ms": {"$lt": _epoch_ms(sent_before)}},
                {"sent_at_ms": {"$exists": False}, "sent_at": {"$lt": sent_before}},
            ]
        }
        cursor = (
            self.db["outbox"].find(query, {"sequence": 1}).sort("sequence", ASCENDING).limit(limit)
        )
        sequences = [document["sequence"] async for document in cursor]
        if not sequences:
            return 0
        result = await self.db["outbox"].delete_many({"sequence": {"$in": sequences}})
        return result.deleted_count

    async def _documents_about(self, subject: str, aggregates: Sequence[str]) -> list[Document]:
        cursor = self.db["outbox"].find(_about(subject, aggregates)).sort("sequence", ASCENDING)
        return [document async for document in cursor]

    async def about(self, subject: str, aggregates: Sequence[str]) -> list[HeldEvent]:
        return [
            HeldEvent(
                event_id=str(document["event_id"]),
                event_type=document["event_type"],
                created_at=document.get("created_at"),
                sent=bool(document["sent"]),
                payload=document["payload"],
            )
            for document in await self._documents_about(subject, aggregates)
        ]

    async def forget(self, subject: str, aggregates: Sequence[str]) -> int:
        touched = 0
        sent: list[int] = []
        for document in await self._documents_about(subject, aggregates):
            if document["sent"]:
                sent.append(document["sequence"])
                continue
            payload = redacted_payload(document["payload"])
            if payload != document["payload"]:
                # Sent meanwhile, it went out as it was; the stored copy is stripped anyway.
                await self.db["outbox"].update_one(
                    {"sequence": document["sequence"]}, {"$set": {"payload": payload}}
                )
                touched += 1
        if sent:
            result = await self.db["outbox"].delete_many({"sequence": {"$in": sent}})
            touched += result.deleted_count
        return touched


def _as_datetime(value: Any) -> datetime | None:
    """A stored time as an aware datetime (a MongoDB-compatible server may answer text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _about(subject: str, aggregates: Sequence[str]) -> dict[str, Any]:
    # The outbox holds a few days of events, so the scan the text match needs stays bounded.
    return {
        "$or": [
            {"aggregate_id": {"$in": [subject, *aggregates]}},
            {"payload": {"$regex": re.escape(subject)}},
        ]
    }
