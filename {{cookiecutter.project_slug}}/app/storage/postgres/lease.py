"""A lease row in PostgreSQL: owner token, expiry and fencing counter, all judged by
the database's clock (instances' clocks never compare)."""

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.lease import owner_token
from app.storage.postgres.models import LeaseRow

EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


class PostgresLease:
    def __init__(self, autocommit: async_sessionmaker[AsyncSession], name: str) -> None:
        # Sessions in autocommit: each statement here is its own transaction.
        self.autocommit = autocommit
        self.name = name
        self.owner = owner_token()

    async def take(self, seconds: float) -> int | None:
        """Take or renew the lease; its fencing counter, or None while another holds it.

        One statement: the insert creates the lease, the conflict branch takes it over
        only when it is this owner's or has expired, and counts a change of hands."""
        until = func.now() + timedelta(seconds=seconds)
        insertion = insert(LeaseRow).values(name=self.name, owner=self.owner, until=until, fence=1)
        statement = insertion.on_conflict_do_update(
            index_elements=[LeaseRow.name],
            set_={
                "owner": insertion.excluded.owner,
                "until": insertion.excluded.until,
                "fence": LeaseRow.fence
                + case((LeaseRow.owner != insertion.excluded.owner, 1), else_=0),
            },
            where=(LeaseRow.owner == insertion.excluded.owner) | (LeaseRow.until < func.now()),
        ).returning(LeaseRow.fence)
        async with self.autocommit() as session:
            fence = await session.scalar(statement)
        return None if fence is None else int(fence)

    def held(self, fence: int) -> ColumnElement[bool]:
        """True while this owner still holds the lease it took with `fence`: put in the
        fenced write's own WHERE. FOR SHARE makes a concurrent take-over wait for the
        write (or the write see the new owner), never both pass."""
        return exists(
            select(text("1"))
            .select_from(LeaseRow)
            .where(
                LeaseRow.name == self.name,
                LeaseRow.owner == self.owner,
                LeaseRow.fence == fence,
                LeaseRow.until > func.now(),
            )
            .with_for_update(read=True)
        )

    async def release(self) -> None:
        """Hand over at once (on a clean stop), instead of after the lease's time."""
        async with self.autocommit() as session:
            await session.execute(
                update(LeaseRow)
                .where(LeaseRow.name == self.name, LeaseRow.owner == self.owner)
                .values(until=EPOCH)
            )
