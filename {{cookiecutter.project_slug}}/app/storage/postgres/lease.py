"""A lease row in PostgreSQL: owner token, expiry and fencing counter, all judged by
the database's clock (instances' clocks never compare).

The statements are built once, their values bound at each call (see rows.py): the relay
takes the lease every round, and a statement built anew costs its construction and cache
key each time."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    Interval,
    bindparam,
    case,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.lease import owner_token
from app.storage.postgres.models import LeaseRow, table_of

EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
LEASES = table_of(LeaseRow)
_NAME: BindParameter[str] = bindparam("lease_name")
_OWNER: BindParameter[str] = bindparam("lease_owner")

# Take or renew the lease in one statement: the insert creates it, the conflict branch
# takes it over only when it is this owner's or has expired, and counts a change of hands.
_NEW = insert(LEASES).values(
    name=_NAME,
    owner=_OWNER,
    until=func.now() + bindparam("lease_term", type_=Interval),
    fence=literal(1),
)
TAKE = _NEW.on_conflict_do_update(
    index_elements=[LEASES.c.name],
    set_={
        "owner": _NEW.excluded.owner,
        "until": _NEW.excluded.until,
        "fence": LEASES.c.fence + case((LEASES.c.owner != _NEW.excluded.owner, 1), else_=0),
    },
    where=(LEASES.c.owner == _NEW.excluded.owner) | (LEASES.c.until < func.now()),
).returning(LEASES.c.fence)

# True while the owner still holds the lease it took with the fence: put in a fenced
# write's own WHERE, with `PostgresLease.held`'s values. FOR SHARE makes a concurrent
# take-over wait for the write (or the write see the new owner), never both pass.
HELD = exists(
    select(literal(1))
    .select_from(LEASES)
    .where(
        LEASES.c.name == _NAME,
        LEASES.c.owner == _OWNER,
        LEASES.c.fence == bindparam("lease_fence"),
        LEASES.c.until > func.now(),
    )
    .with_for_update(read=True)
)

RELEASE = (
    update(LEASES)
    .where(LEASES.c.name == _NAME, LEASES.c.owner == _OWNER)
    .values(until=literal(EPOCH))
)


class PostgresLease:
    def __init__(self, autocommit: AsyncEngine, name: str) -> None:
        # An engine in autocommit: each statement here is its own transaction.
        self.autocommit = autocommit
        self.name = name
        self.owner = owner_token()

    def _values(self) -> dict[str, Any]:
        return {"lease_name": self.name, "lease_owner": self.owner}

    async def take(self, seconds: float) -> int | None:
        """Take or renew the lease; its fencing counter, or None while another holds it."""
        async with self.autocommit.connect() as connection:
            fence = await connection.scalar(
                TAKE, {**self._values(), "lease_term": timedelta(seconds=seconds)}
            )
        return None if fence is None else int(fence)

    def held(self, fence: int) -> dict[str, Any]:
        """The values of HELD for the lease taken with `fence`."""
        return {**self._values(), "lease_fence": fence}

    async def release(self) -> None:
        """Hand over at once (on a clean stop), instead of after the lease's time."""
        async with self.autocommit.connect() as connection:
            await connection.execute(RELEASE, self._values())
