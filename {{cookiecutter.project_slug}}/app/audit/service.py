"""The data subject's rights (export, erasure) and the administrators' audit query.

Each is audited through its event, in the transaction that does the work.
"""

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from pydantic import BaseModel, ConfigDict, Field

from app.audit.events import AccountErased, AuditTrailRead, ErasureRefused, PersonalDataExported
from app.audit.records import AuditLog, AuditQuery, AuditRecord, Outcome, SealedEntry
from app.auth.passwords import PasswordHasher
from app.auth.tokens import Tokens
from app.core.errors import REDIS_DOWN, with_event
from app.core.pagination import PAGE_MAX, Cursor, Slice, Window, every_page, slice_window
from app.core.types import UtcDateTime
from app.events.outbox import HeldEvent
from app.events.schemas import ItemDeleted
from app.items.schemas import ItemPublic, ItemQuery
from app.items.service import cache_key
from app.storage.cache import Cache
from app.storage.unit_of_work import Database, UnitOfWork
from app.users.erased import erased_email as erased_email
from app.users.errors import UserNotFoundError, WrongPasswordError
from app.users.schemas import PASSWORD_MAX, UserPublic

log = structlog.get_logger(__name__)


class HeldEventPublic(BaseModel):
    """An event about the person still in the outbox: waiting to be published, or
    published and kept until EVENTS_SENT_RETENTION_HOURS have passed."""

    event_id: str
    event_type: str
    created_at: UtcDateTime | None
    sent: bool
    payload: str

    @classmethod
    def of(cls, event: HeldEvent, *, subject: str) -> "HeldEventPublic":
        """As held, but an event someone else caused (an administrator, or an anonymous
        caller) names neither them nor their request, as in ExportedRecord."""
        payload = event.payload
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("actor_id") != subject:
            payload = json.dumps(data | {"actor_id": None, "correlation_id": None})
        return cls.model_validate(vars(event) | {"payload": payload})


class ExportedRecord(BaseModel):
    """An audit record in the export of the person it is about. A record of what someone
    else did (an administrator, or an anonymous caller) names what was done and when, not
    who: their id, address, browser and request are theirs, not the subject's."""

    sequence: int
    occurred_at: UtcDateTime
    # The person's own id when they acted; null when someone else did.
    actor: str | None
    action: str
    resource_type: str
    resource_id: str | None
    outcome: Outcome
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, record: SealedEntry, *, subject: str) -> "ExportedRecord":
        entry = record.entry
        own = entry.actor == subject
        return cls(
            sequence=record.sequence,
            occurred_at=entry.occurred_at,
            actor=entry.actor if own else None,
            action=entry.action,
            resource_type=entry.resource_type,
            resource_id=entry.resource_id,
            outcome=entry.outcome,
            client_ip=entry.client_ip if own else None,
            user_agent=entry.user_agent if own else None,
            request_id=entry.request_id if own else None,
            detail=entry.detail,
        )


class PersonalData(BaseModel):
    """Everything this service holds about one person."""

    exported_at: UtcDateTime
    user: UserPublic
    items: list[ItemPublic]
    # Records of what the person did, and of what anyone did to their account or to
    # their items (those they hold and those deleted since).
    audit_trail: list[ExportedRecord]
    # Events naming the person or their items, in the outbox.
    outbox_events: list[HeldEventPublic] = Field(default_factory=list)


class Erasure(BaseModel):
    """Erasing an account is confirmed with its password, like a password change. Nothing
    else is taken: a field such as a user id would suggest the erasure of someone else."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


async def _owned_items(uow: UnitOfWork, owner_id: UUID) -> list[ItemPublic]:
    query = ItemQuery(owner_id=owner_id, sort="created_at")
    return await every_page(
        lambda after: uow.items.find(query, after=after, limit=PAGE_MAX),
        lambda item: Cursor(sort=query.sort, value=item.created_at, id=item.id),
    )


# Items whose audit records one read asks for.
_IDS_A_READ = 500


async def _every_record(
    audit: AuditLog, query: AuditQuery, resource_ids: Sequence[str] = ()
) -> list[SealedEntry]:
    return await every_page(
        lambda before: audit.query(
            query, before_sequence=before, limit=PAGE_MAX, resource_ids=resource_ids
        ),
        lambda record: record.sequence,
    )


async def _records_about(
    audit: AuditLog, subject: str, items: list[ItemPublic]
) -> list[ExportedRecord]:
    """The subject's own records, the records about their account, and the records about
    every item they own or owned: their items are created by them alone, so their own
    `item.create` records name the items since deleted."""
    found: dict[int, SealedEntry] = {}

    async def collect(query: AuditQuery, resource_ids: Sequence[str] = ()) -> list[SealedEntry]:
        records = await _every_record(audit, query, resource_ids)
        found.update((record.sequence, record) for record in records)
        return records

    own = await collect(AuditQuery(actor=subject))
    await collect(AuditQuery(resource_id=subject))
    item_ids = {str(item.id) for item in items} | {
        record.entry.resource_id
        for record in own
        if record.entry.action == "item.create" and record.entry.resource_id
    }
    # The items' records in a few reads, not one an item (an account of 300 items took
    # 2.5 s to export).
    ordered = sorted(item_ids)
    for start in range(0, len(ordered), _IDS_A_READ):
        await collect(AuditQuery(), ordered[start : start + _IDS_A_READ])
    return [ExportedRecord.of(found[sequence], subject=subject) for sequence in sorted(found)]


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
        audit_trail=await _records_about(audit, str(user_id), items),
        outbox_events=[HeldEventPublic.of(event, subject=str(user_id)) for event in held],
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
    """Delete the person's items, anonymise the account and end every session; then
    forget what Redis keeps of them.

    Once this returns the account owns no item, and no create for it succeeds, whatever
    requests were in flight: the sessions end first, so no new request gets in; then the
    account is anonymised (which marks it erased) before its items are listed, and an
    item's insert checks that mark (see ItemRepository.add). A create that raced the
    erasure either came first, and its item is deleted here, or is refused. Where the
    database can make the two conflict (a row lock), no such item exists even for a
    moment; where it cannot, a create that commits after the mark removes its own item
    before it answers its refusal (see the repositories' `add`).

    The audit trail stays: it must be kept for its retention period, and after this it
    names only an id that no longer leads to a person. In the outbox, published events
    about the person are deleted; those still waiting keep their ids (consumers need
    them, `user.erased` above all) and lose any personal field.
    """
    unusable = await passwords.hash(secrets.token_urlsafe(32))
    async with database.unit_of_work(read_only=True) as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFoundError
    if not await passwords.verify(data.password, user.password_hash):
        raise with_event(WrongPasswordError(), ErasureRefused(user_id=user_id))
    # No request authenticates from here on. Should the erasure fail below, the person
    # logs in again and retries: nothing else has changed.
    await tokens.try_revoke_all(str(user_id))
    async with database.unit_of_work() as uow:
        # First: from here on, no item can be added to the account.
        await uow.users.anonymise(user_id, email=erased_email(user_id), password_hash=unusable)
        items = await _owned_items(uow, user_id)
        for item in items:
            await uow.items.delete(item.id)
            uow.emit(ItemDeleted(item_id=item.id))
        # Once this commits no session can be refreshed, even if Redis is down below.
        await uow.users.raise_token_version(user_id)
        # Before the commit: if this fails nothing is erased and the erasure can be retried.
        await database.outbox.forget(str(user_id), [str(item.id) for item in items])
        uow.emit(AccountErased(user_id=user_id, items_deleted=len(items)))
    for item in items:
        await cache.delete(cache_key(item.id))
    # Again: a login between the first revocation and the commit may have opened one.
    await tokens.try_revoke_all(str(user_id))
    await _forget_in_redis(cache, user_id=str(user_id))


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


async def _forget_in_redis(cache: Cache, *, user_id: str) -> None:
    """Delete every key naming the person, whatever feature wrote it: their idempotency
    records (each holds a created item as it was answered) and session list. Rate-limit
    keys name nobody (app/core/rate_limit.py hashes them). After the commit, so that a
    create that answered before it keeps no record past it: one completing later finds
    its key gone and keeps nothing (app/core/idempotency.py).

    A scan, not a list kept for the purpose: erasures are rare, and no request pays for
    keeping such a list. If Redis is down the keys expire on their own (idempotency
    records after IDEMPOTENCY_TTL_SECONDS)."""
    try:
        pattern = f"{_glob_escape(cache.prefix)}*{user_id}*"
        async for key in cache.redis.scan_iter(match=pattern, count=1000):
            await cache.redis.delete(key)
    except REDIS_DOWN:
        log.error("erasure_redis_keys_kept", reason="redis unavailable")


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
    """One record, by its sequence number; its reading is recorded like a query's. (The
    first from it on, checked: `sequence + 1` is past what the databases store when the
    number is the largest they do.)"""
    first = await audit.query(
        AuditQuery(), before_sequence=None, after_sequence=sequence - 1, limit=1, oldest_first=True
    )
    found = [record for record in first if record.sequence == sequence]
    async with database.unit_of_work() as uow:
        uow.emit(AuditTrailRead(count=len(found)))
    return AuditRecord.of(found[0]) if found else None
