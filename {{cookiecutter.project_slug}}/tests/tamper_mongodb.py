"""What any user with write access to the audit collection can do to the trail behind
the service's back, for the audit tests to show what each leaves behind."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.services import Services
from app.storage.mongodb.audit import LEASE_ID
from app.storage.mongodb.database import MongoDatabase
from app.storage.mongodb.lease import MongoLease
from tests.conftest import eventually


@asynccontextmanager
async def records_removed(services: Services, sequences: list[int] | None) -> AsyncIterator[None]:
    """Records deleted behind the service's back (all when `sequences` is None), as any
    user with write access to the collection can; put back afterwards."""
    assert isinstance(services.database, MongoDatabase)
    collection = services.database.db["audit_log"]
    where: dict[str, object] = {} if sequences is None else {"sequence": {"$in": sequences}}
    documents = await collection.find(where).to_list()
    await collection.delete_many(where)
    try:
        yield
    finally:
        if documents:
            await collection.insert_many(documents)


@asynccontextmanager
async def record_forged(services: Services, seal: str) -> AsyncIterator[None]:
    """A copy of the newest record put after it as the next in the chain, with a seal the
    key did not make, as any user with write access to the collection can; taken away
    afterwards."""
    assert isinstance(services.database, MongoDatabase)
    collection = services.database.db["audit_log"]
    newest = await collection.find_one({"sealed": True}, sort=[("position", -1)])
    last = await collection.find_one({}, sort=[("sequence", -1)])
    assert newest is not None
    assert last is not None
    newest.pop("_id")
    forged = newest | {
        "sequence": last["sequence"] + 1000,
        "position": newest["position"] + 1,
        "previous": newest["seal"],
        "seal": seal,
    }
    await collection.insert_one(forged)
    try:
        yield
    finally:
        await collection.delete_one({"sequence": forged["sequence"]})


@asynccontextmanager
async def sealers_turn_held(services: Services) -> AsyncIterator[None]:
    """The sealer's lease taken by another owner, as any user with write access to the
    collection can."""
    assert isinstance(services.database, MongoDatabase)
    lease = MongoLease(services.database.db, LEASE_ID)
    assert await eventually(lambda: lease.take(3600)) is not None
    try:
        yield
    finally:
        await lease.release()


# Values no record has.
NOT_A_RECORDS: dict[str, object] = {"outcome": "tampered", "detail": [1], "position": "6"}


@asynccontextmanager
async def record_altered(services: Services, sequence: int, field: str) -> AsyncIterator[None]:
    """One field of a record given a value no record has, as any user with write access
    to the collection can; put back afterwards."""
    assert isinstance(services.database, MongoDatabase)
    collection = services.database.db["audit_log"]
    document = await collection.find_one({"sequence": sequence})
    assert document is not None
    await collection.update_one({"sequence": sequence}, {"$set": {field: NOT_A_RECORDS[field]}})
    try:
        yield
    finally:
        await collection.update_one({"sequence": sequence}, {"$set": {field: document[field]}})
