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
from app.core.pagination import PAGE_MAX, Cursor, every_page
from app.core.types import UtcDateTime
from app.events.schemas import ItemDeleted
from app.items.schemas import ItemPublic, ItemQuery
from app.items.service import cache_key
from app.storage.cache import Cache
from app.storage.unit_of_work import Database, UnitOfWork
from app.users.errors import UserNotFoundError, WrongPasswordError
from app.users.schemas import PASSWORD_MAX, UserPublic


class PersonalData(BaseModel):
    """Everything this service holds about one person."""

    exported_at: UtcDateTime
    user: UserPublic
    items: list[ItemPublic]
    # Records of what the person did or what was done to their account.
    audit_trail: list[AuditRecord]


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
    return PersonalData(
        exported_at=datetime.now(UTC),
        user=user.public(),
        items=items,
        audit_trail=await _records_about(audit, str(user_id)),
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
    names only an id that no longer leads to a person.
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
