"""The data subject's rights (export, erasure) and the administrators' audit query.

Each is audited through its event, in the transaction that does the work.
"""

import secrets
from datetime import UTC, datetime
from uuid import UUID

from pydantic import BaseModel, Field

from app.audit.events import AccountErased, AuditTrailRead, ErasureRefused, PersonalDataExported
from app.audit.records import AuditLog, AuditQuery, AuditRecord, SealedEntry
from app.auth.passwords import PasswordHasher
from app.auth.tokens import Tokens
from app.core.errors import with_event
from app.core.pagination import PAGE_MAX, Cursor, Slice, Window, every_page, slice_window
from app.core.types import UtcDateTime
from app.events.schemas import ItemDeleted
from app.items.schemas import ItemPublic, ItemQuery
from app.items.service import cache_key
from app.storage.cache import Cache
from app.storage.unit_of_work import Database, UnitOfWork
from app.users.errors import UserNotFoundError, WrongPasswordError
from app.users.schemas import PASSWORD_MAX, UserPublic


class HeldEventPublic(BaseModel):
    """An event about the person still in the outbox: waiting to be published, or
    published and kept until EVENTS_SENT_RETENTION_HOURS have passed."""

    event_id: str
    event_type: str
    created_at: UtcDateTime | None
    sent: bool
    payload: str


class PersonalData(BaseModel):
    """Everything this service holds about one person."""

    exported_at: UtcDateTime
    user: UserPublic
    items: list[ItemPublic]
    # Records of what the person did or what was done to their account.
    audit_trail: list[AuditRecord]
    # Events naming the person or their items, in the outbox.
    outbox_events: list[HeldEventPublic] = Field(default_factory=list)


class Erasure(BaseModel):
    """Erasing an account is confirmed with its password, like a password change."""

    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


def erased_email(user_id: UUID) -> str:
    # The reserved .invalid domain: no mail is ever sent there, nobody can register it.
    return f"erased-{user_id}@erased.invalid"


async def _owned_items(uow: UnitOfWork, owner_id: UUID) -> list[ItemPublic]:
    query = ItemQuery(owner_id=owner_id, sort="created_at")
    return await every_page(
        lambda after: uow.items.find(query, after=after, limit=PAGE_MAX),
        lambda item: Cursor(sort=query.sort, value=item.created_at, id=item.id),
    )


async def _every_record(audit: AuditLog, query: AuditQuery) -> list[SealedEntry]:
    return await every_page(
        lambda before: audit.query(query, before_sequence=before, limit=PAGE_MAX),
        lambda record: record.sequence,
    )


async def _records_about(audit: AuditLog, subject: str) -> list[AuditRecord]:
    found: dict[int, AuditRecord] = {}
    for query in (AuditQuery(actor=subject), AuditQuery(resource_id=subject)):
        records = await _every_record(audit, query)
        found.update((record.sequence, AuditRecord.of(record)) for record in records)
    return [found[sequence] for sequence in sorted(found)]


async def export_personal_data(
    *, database: Database, audit: AuditLog, user_id: UUID
) -> PersonalData:
    async with database.unit_of_work() as uow:
        user = await uow.users.get(user_id)
        if user is None:
            raise UserNotFoundError
        items = await _owned_items(uow, user_id)
        uow.emit(PersonalDataExported(user_id=user_id))
    held = await database.outbox.about(str(user_id), [str(item.id) for item in items])
    return PersonalData(
        exported_at=datetime.now(UTC),
        user=user.public(),
        items=items,
        audit_trail=await _records_about(audit, str(user_id)),
        outbox_events=[HeldEventPublic.model_validate(vars(event)) for event in held],
    )


async def erase_account(
    *,
    database: Database,
    passwords: PasswordHasher,
    tokens: Tokens,
    cache: Cache,
    user_id: UUID,
    data: Erasure,
) -> None:
    """Delete the person's items, anonymise the account and end every session.

    The audit trail stays: it must be kept for its retention period, and after this it
    names only an id that no longer leads to a person. In the outbox, published events
    about the person are deleted; those still waiting keep their ids (consumers need
    them, `user.erased` above all) and lose any personal field.
    """
    unusable = await passwords.hash(secrets.token_urlsafe(32))
    async with database.unit_of_work() as uow:
        user = await uow.users.get(user_id)
        if user is None:
            raise UserNotFoundError
        if not await passwords.verify(data.password, user.password_hash):
            raise with_event(WrongPasswordError(), ErasureRefused(user_id=user_id))
        items = await _owned_items(uow, user_id)
        for item in items:
            await uow.items.delete(item.id)
            uow.emit(ItemDeleted(item_id=item.id))
        await uow.users.anonymise(user_id, email=erased_email(user_id), password_hash=unusable)
        # Once this commits no session can be refreshed, even if Redis is down below.
        await uow.users.raise_token_version(user_id)
        # Before the commit: if this fails nothing is erased and the erasure can be retried.
        await database.outbox.forget(str(user_id), [str(item.id) for item in items])
        uow.emit(AccountErased(user_id=user_id, items_deleted=len(items)))
    for item in items:
        await cache.delete(cache_key(item.id))
    await tokens.try_revoke_all(str(user_id))


async def query_trail(
    *, database: Database, audit: AuditLog, query: AuditQuery, before: int | None, limit: int
) -> tuple[list[AuditRecord], int | None]:
    """A page of matching records, newest first, and the sequence to continue before."""
    records = await audit.query(query, before_sequence=before, limit=limit + 1)
    page = [AuditRecord.of(record) for record in records[:limit]]
    async with database.unit_of_work() as uow:
        uow.emit(AuditTrailRead(count=len(page)))
    return page, (page[-1].sequence if len(records) > limit else None)


async def trail_window(
    *,
    database: Database,
    audit: AuditLog,
    query: AuditQuery,
    window: Window,
    after: int | None,
    before: int | None,
) -> Slice[AuditRecord]:
    """A Relay window onto the matching records, newest first (`after` and `before` are
    the window's cursors, read as sequences)."""

    async def travel(
        *, reverse: bool, beyond: int | None, stop: int | None, limit: int
    ) -> list[AuditRecord]:
        # Newest first: going on means going down the sequence, going back up.
        older, newer = (stop, beyond) if reverse else (beyond, stop)
        records = await audit.query(
            query, before_sequence=older, after_sequence=newer, limit=limit, oldest_first=reverse
        )
        return [AuditRecord.of(record) for record in records]

    window_slice = await slice_window(
        travel, lambda record: record.sequence, window, after=after, before=before
    )
    async with database.unit_of_work() as uow:
        uow.emit(AuditTrailRead(count=len(window_slice.rows)))
    return window_slice


async def trail_record(*, database: Database, audit: AuditLog, sequence: int) -> AuditRecord | None:
    """One record, by its sequence number; its reading is recorded like a query's."""
    found = await audit.query(
        AuditQuery(), before_sequence=sequence + 1, after_sequence=sequence - 1, limit=1
    )
    async with database.unit_of_work() as uow:
        uow.emit(AuditTrailRead(count=len(found)))
    return AuditRecord.of(found[0]) if found else None
