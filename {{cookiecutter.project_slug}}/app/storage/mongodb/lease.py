"""A lease document in MongoDB, taken by compare-and-set on its owner and expiry.

The fencing counter goes up with every take (a renewal included), so a later holder's
counter is always higher than an earlier one's; the writes a lease guards compare the
counter they stamp with the one in the documents they touch (see outbox.py), or
collide on a unique index. MongoDB has no write that also checks another document, so
the lease alone cannot fence: the documents do.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from app.core.lease import owner_token
from app.storage.mongodb.items import Document

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MongoLease:
    def __init__(self, db: AsyncDatabase[Document], name: str) -> None:
        self.leases = db["leases"]
        self.name = name
        self.owner = owner_token()

    async def take(self, seconds: float) -> int | None:
        """Take or renew the lease: its fencing counter, or None while another holds it."""
        now = datetime.now(UTC)
        query: dict[str, Any] = {
            "_id": self.name,
            "$or": [{"until": {"$lt": now}}, {"owner": self.owner}],
        }
        try:
            lease = await self.leases.find_one_and_update(
                query,
                {
                    "$set": {"owner": self.owner, "until": now + timedelta(seconds=seconds)},
                    "$inc": {"fence": 1},
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None  # held by another owner and not expired
        # Checked again: a server that does not raise on a conflicting upsert (the
        # nx-27017 stand-in) must still not hand the lease to two owners.
        if lease is None or lease.get("owner") != self.owner:
            return None
        return int(lease.get("fence", 0))

    async def holds(self, fence: int) -> bool:
        """Still this owner's, unexpired, and not taken since `fence` was given."""
        now = datetime.now(UTC)
        found = await self.leases.find_one(
            {"_id": self.name, "owner": self.owner, "fence": fence, "until": {"$gt": now}}
        )
        return found is not None

    async def release(self) -> None:
        """Hand over at once (a clean stop, or the end of a round), not after expiry."""
        await self.leases.update_one(
            {"_id": self.name, "owner": self.owner}, {"$set": {"until": EPOCH}}
        )
