"""What the database's superuser (or the table's owner) can do to the audit trail behind
the service's back, for the audit tests to show what each leaves behind."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.services import Services
from app.storage.postgres.audit import SEALER_LOCK
from app.storage.postgres.database import PostgresDatabase


def engine(services: Services) -> AsyncEngine:
    assert isinstance(services.database, PostgresDatabase)
    return services.database.engine


@asynccontextmanager
async def triggers_off(services: Services) -> AsyncIterator[AsyncConnection]:
    """A transaction with the table's guards off, as the database's superuser can run one."""
    async with engine(services).begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        yield connection


@asynccontextmanager
async def records_removed(services: Services, sequences: list[int] | None) -> AsyncIterator[None]:
    """Records deleted behind the service's back (all when `sequences` is None), as the
    database's superuser can with triggers off; put back afterwards."""
    backup = f"audit_backup_{uuid4().hex[:8]}"
    where = "TRUE" if sequences is None else "sequence = ANY(:sequences)"
    params = {} if sequences is None else {"sequences": sequences}
    async with triggers_off(services) as connection:
        await connection.execute(
            text(f"CREATE TABLE {backup} AS SELECT * FROM audit_log WHERE {where}"),  # noqa: S608
            params,
        )
        await connection.execute(text(f"DELETE FROM audit_log WHERE {where}"), params)  # noqa: S608
    try:
        yield
    finally:
        async with triggers_off(services) as connection:
            await connection.execute(
                text(f"INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * FROM {backup}")  # noqa: S608
            )
            await connection.execute(text(f"DROP TABLE {backup}"))


# Every column of a record but its sequence, which the table numbers.
_FORGED = """
INSERT INTO audit_log (occurred_at, actor, action, resource_type, resource_id, outcome,
    client_ip, user_agent, request_id, detail, position, previous, seal)
SELECT occurred_at, actor, action, resource_type, resource_id, outcome, client_ip,
    user_agent, request_id, detail, position + 1, seal, :seal
FROM audit_log WHERE position = (SELECT max(position) FROM audit_log)
RETURNING sequence
"""


@asynccontextmanager
async def record_forged(services: Services, seal: str) -> AsyncIterator[None]:
    """A copy of the newest record put after it as the next in the chain, with a seal the
    key did not make, as the database's superuser can with triggers off; taken away
    afterwards."""
    async with triggers_off(services) as connection:
        sequence = await connection.scalar(text(_FORGED), {"seal": seal})
    try:
        yield
    finally:
        async with triggers_off(services) as connection:
            await connection.execute(
                text("DELETE FROM audit_log WHERE sequence = :sequence"), {"sequence": sequence}
            )


@asynccontextmanager
async def sealers_turn_held(services: Services) -> AsyncIterator[None]:
    """The sealer's advisory lock held by another session, as any role that can connect
    can hold it."""
    async with engine(services).connect() as connection:
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SEALER_LOCK})
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SEALER_LOCK})


# Values no record has, as the database's types let them be written.
NOT_A_RECORDS = {"outcome": "'tampered'", "detail": "'[1]'::jsonb"}


@asynccontextmanager
async def record_altered(services: Services, sequence: int, field: str) -> AsyncIterator[None]:
    """One field of a record given a value no record has, as the database's superuser can
    with triggers off; put back afterwards."""
    async with triggers_off(services) as connection:
        kept = await connection.scalar(
            text(f"SELECT CAST({field} AS text) FROM audit_log WHERE sequence = :s"),  # noqa: S608
            {"s": sequence},
        )
        await connection.execute(
            text(f"UPDATE audit_log SET {field} = {NOT_A_RECORDS[field]} WHERE sequence = :s"),  # noqa: S608
            {"s": sequence},
        )
    try:
        yield
    finally:
        cast_to = "jsonb" if field == "detail" else "text"
        async with triggers_off(services) as connection:
            await connection.execute(
                text(f"UPDATE audit_log SET {field} = CAST(:v AS {cast_to}) WHERE sequence = :s"),  # noqa: S608
                {"v": kept, "s": sequence},
            )
