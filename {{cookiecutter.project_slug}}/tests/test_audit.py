"""The audit trail records audited actions, sealed in a verifiable chain."""

import asyncio
import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
{%- if cookiecutter.database == "postgres" %}
from pathlib import Path
{%- endif %}
from types import SimpleNamespace
from typing import ClassVar, cast
from uuid import UUID, uuid4

import pytest
import structlog
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from prometheus_client import REGISTRY
{%- if cookiecutter.database == "postgres" %}
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
{%- endif %}
{%- if cookiecutter.api == "graphql" %}
from strawberry.relay import GlobalID
{%- endif %}

from app.audit import service as audit_service
from app.audit.__main__ import main as audit_command
from app.audit.masking import MAX_MASKED, mask_personal_data, mask_text
from app.audit.records import (
    GENESIS,
    PURGE,
    AuditEntry,
    AuditLog,
    AuditQuery,
    ChainTruncatedError,
    Checkpoint,
    Head,
    SealedEntry,
    SealRound,
    seal,
    seal_batch,
    stored_record,
    verify_chain,
)
from app.audit.sealer import AuditSealer, stored_checkpoint
from app.audit.service import Erasure
from app.auth import service as auth
from app.auth.tokens import Tokens
from app.core.context import RequestContext, set_current_request
from app.core.errors import UnauthorizedError
from app.core.logging import MAX_VALUE_CHARS, REDACT_MARGIN, configure_logging
from app.core.pagination import Cursor, PagingStuckError
from app.events.outbox import HeldEvent
from app.events.schemas import ItemEvent
from app.items import service
from app.items.errors import ItemNotFoundError
from app.items.repository import ItemRepository
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery
{%- if cookiecutter.database == "postgres" %}
from app.services import Services, build_services
{%- else %}
from app.services import Services
{%- endif %}
from app.settings import Settings
from app.storage.cache import Cache
{%- if cookiecutter.database == "postgres" %}
from app.storage.postgres.audit import PostgresAuditLog
from app.storage.postgres.database import PostgresDatabase
{%- else %}
from app.storage.mongodb.lease import MongoLease
{%- endif %}
from app.storage.unit_of_work import UnitOfWork
from app.users import service as user_service
from app.users.errors import WrongPasswordError
from app.users.schemas import PasswordChange
from tests import actions, api
from tests.conftest import (
    PASSWORD,
    Account,
    background_paused,
    eventually,
    in_turn,
    new_account,
    new_item,
    override,
    serving,
    set_role,
    unique,
    unreachable,
)
from tests.cursors import captured_logs
from tests.tamper_{{ cookiecutter.database }} import (
    NOT_A_RECORDS,
    record_altered,
    record_forged,
    records_removed,
    sealers_turn_held,
)
{%- if cookiecutter.database == "postgres" %}
from tests.tamper_postgres import engine as _engine
{%- endif %}
from tests.test_auth import login


@contextmanager
def acting_as(account: Account) -> Iterator[None]:
    """What the API does for an authenticated request: the caller is the actor."""
    set_current_request(RequestContext(request_id=uuid4().hex, actor_id=str(account.user.id)))
    try:
        yield
    finally:
        set_current_request(None)


async def seal_once(services: Services) -> SealRound:
    """One sealing round of this instance's sealer, waiting its turn with the others."""
    round_: SealRound = await eventually(lambda: in_turn(services.sealer.run_once))
    return round_


async def all_sealed(services: Services) -> Head:
    """Wait until every record appended so far is sealed and checkpointed in Redis."""

    async def done() -> Head | None:
        head = (await seal_once(services)).head
        report = await services.audit.verify()
        checkpoint = await stored_checkpoint(services.cache)
        kept = checkpoint is not None and checkpoint.position == report.head.position
        return head if report.unsealed == 0 and kept else None

    head: Head = await eventually(done)
    return head


async def test_creating_an_item_is_audited(services: Services, account: Account) -> None:
    request_id = uuid4().hex
    set_current_request(
        RequestContext(
            request_id=request_id,
            client_ip="203.0.113.7",
            user_agent="audit-test",
            actor_id=str(account.user.id),
        )
    )
    try:
        item = await service.create_item(
            database=services.database,
            owner=account.principal,
            data=ItemCreate(name=unique("audited")),
        )
    finally:
        set_current_request(None)

    records = await services.audit.recent(limit=50)
    (record,) = [r for r in records if r.entry.request_id == request_id]
    entry = record.entry
    assert (entry.action, entry.resource_type, entry.resource_id) == (
        "item.create",
        "item",
        str(item.id),
    )
    assert (entry.outcome, entry.actor) == ("success", str(account.user.id))
    assert (entry.client_ip, entry.user_agent) == ("203.0.113.7", "audit-test")
    assert entry.occurred_at.tzinfo is not None

    # Appended unsealed, then chained by the sealer in the background.
    await all_sealed(services)
    report = await services.audit.verify()
    assert report.intact
    assert report.checked >= 1


def _chain(key: bytes, count: int) -> list[SealedEntry]:
    records, previous = [], GENESIS
    for sequence in range(1, count + 1):
        entry = AuditEntry(action="item.create", resource_type="item", resource_id=str(sequence))
        current = seal(key, previous, sequence, entry)
        records.append(SealedEntry(sequence, entry, sequence, previous, current))
        previous = current
    return records


def test_verify_finds_the_first_edited_record() -> None:
    key = b"k" * 32
    records = _chain(key, 5)
    assert verify_chain(key, records).intact

    edited = records[2].entry.model_copy(update={"actor": "mallory"})
    records[2] = SealedEntry(3, edited, 3, records[2].previous, records[2].seal)
    report = verify_chain(key, records)
    assert (report.intact, report.first_broken, report.checked) == (False, 3, 4)
    assert report.problems == (
        "record 3 at position 3 was altered: its seal does not match its content",
    )


def test_a_record_that_cannot_be_read_back_is_named_not_raised() -> None:
    """Values written behind the service's back that are not a record's (an outcome
    outside its choices, a detail that is no object, a position that is no number) make
    the record unreadable: verify names it, the sealer leaves it unsealed, nothing
    raises for whoever reads the trail."""
    key = b"k" * 32
    records = _chain(key, 3)
    document = records[1].entry.model_dump() | {"outcome": "tampered", "detail": [1]}
    read = stored_record(2, document, position=2, previous=records[1].previous, seal="s")
    assert read.unreadable == "detail, outcome"
    report = verify_chain(key, [records[0], read, records[2]])
    assert (report.intact, report.first_broken) == (False, 2)
    assert report.problems == (
        "record 2 at position 2 was altered: it cannot be read (detail, outcome)",
        "record 3 at position 3 does not follow the record before it: a record was "
        "replaced or reordered",
    )
    moved = stored_record(4, records[2].entry, position="6", previous=None, seal=None)
    assert (moved.position, moved.unreadable) == (None, "position")
    assert verify_chain(key, [*records, moved]).problems == (
        "record 4 (unsealed) was altered: it cannot be read (position)",
    )
    fresh = SealedEntry(5, AuditEntry(action="item.create", resource_type="item"))
    sealed = seal_batch(key, Head(3, records[2].seal or ""), [moved, fresh])
    assert [(record.sequence, record.position) for record in sealed] == [(5, 4)]


def test_verify_finds_a_deleted_record_and_a_wrong_key() -> None:
    key = b"k" * 32
    records = _chain(key, 4)
    assert verify_chain(key, [*records[:1], *records[2:]]).problems == (
        "missing: position 2 (before record 3)",
    )
    assert verify_chain(key, records[1:]).problems == ("missing: position 1 (before record 2)",)
    assert verify_chain(b"x" * 32, records).first_broken == 1


def test_a_checkpoint_reveals_the_newest_records_removed_or_all_of_them() -> None:
    key = b"k" * 32
    records = _chain(key, 4)
    checkpoint = Checkpoint.issue(key, Head(4, records[3].seal or ""), purged_through=0)
    assert Checkpoint.parse(checkpoint.token()) == checkpoint
    assert verify_chain(key, records, checkpoints=[checkpoint]).intact
    # Without the checkpoint, a chain cut at its end looks whole.
    assert verify_chain(key, records[:2]).intact
    newest = verify_chain(key, records[:2], checkpoints=[checkpoint])
    assert newest.problems[0].startswith("missing: positions 3 to 4 (the checkpoint of ")
    emptied = verify_chain(key, [], checkpoints=[checkpoint])
    assert emptied.problems[0].startswith("missing: positions 1 to 4")
    forged = checkpoint.model_copy(update={"position": 2, "seal": records[1].seal})
    assert "not signed" in verify_chain(key, records, checkpoints=[forged]).problems[0]


def test_verify_reports_records_left_unsealed_past_the_window() -> None:
    key = b"k" * 32
    records = _chain(key, 2)
    old = AuditEntry(
        action="item.create",
        resource_type="item",
        occurred_at=datetime.now(UTC) - timedelta(seconds=61),
    )
    fresh = AuditEntry(action="item.create", resource_type="item")
    window = timedelta(seconds=30)
    assert verify_chain(key, [*records, SealedEntry(9, fresh)], window=window).intact
    report = verify_chain(key, [*records, SealedEntry(8, old)], window=window)
    assert report.problems[0].startswith("unsealed: 1 records older than 30 s, the oldest record 8")


def test_personal_data_is_masked_in_real_log_output() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream, redact=mask_personal_data)
    try:
        logging.getLogger("app.test").warning(
            "contact kim.minji@example.co.kr or +82 10-1234-5678, rrn 900101-1234567, "
            "card 4111 1111 1111 1111, order 1234567812345678, header Bearer abc.def-ghi"
        )
        structlog.get_logger("app.test").info(
            "signup", email="Jane.Doe@example.com", password="hunter2-secret!", attempts=3
        )
        try:
            raise ValueError("cannot charge 5500-0000-0000-0004 for lee@example.org")
        except ValueError:
            logging.getLogger("app.test").exception("payment failed")
    finally:
        configure_logging(level="INFO", json=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    for secret in (
        "kim.minji@example.co.kr",
        "1234-5678",
        "900101-1234567",
        "4111 1111 1111 1111",
        "abc.def-ghi",
        "Jane.Doe@example.com",
        "hunter2",
        "5500-0000-0000-0004",
        "lee@example.org",
    ):
        assert secret not in text, secret
    assert "order 1234567812345678" in lines[0]["event"]  # not Luhn-valid: not a card
    assert "[rrn]" in lines[0]["event"]
    assert "[card]" in lines[0]["event"]
    assert (lines[1]["password"], lines[1]["attempts"]) == ("[redacted]", 3)
    assert "[email]" in lines[2]["exception"]


async def actions_of(services: Services, actor: str) -> list[tuple[str, str]]:
    records = await services.audit.recent(limit=200)
    return [(r.entry.action, r.entry.outcome) for r in records if r.entry.actor == actor]


async def test_sign_in_actions_are_audited(services: Services, account: Account) -> None:
    user = str(account.user.id)
    with pytest.raises(UnauthorizedError):
        await login(services, account.email, "Wrong-passw0rd!")
    pair = await login(services, account.email, PASSWORD)
    rotated = await auth.refresh(
        database=services.database, tokens=services.tokens, refresh_token=pair.refresh_token
    )
    with pytest.raises(UnauthorizedError):
        await auth.refresh(
            database=services.database, tokens=services.tokens, refresh_token=pair.refresh_token
        )
    principal = await services.tokens.authenticate(
        (await login(services, account.email, PASSWORD)).access_token
    )
    await auth.logout(database=services.database, tokens=services.tokens, principal=principal)
    assert rotated.access_token

    records = await services.audit.recent(limit=200)
    mine = [(r.entry.action, r.entry.outcome) for r in records if r.entry.resource_id == user]
    assert mine[::-1] == [
        ("user.register", "success"),
        ("session.login", "failed"),
        ("session.login", "success"),
        ("session.refresh", "success"),
        ("session.refresh_reuse", "denied"),
        ("session.login", "success"),
        ("session.logout", "success"),
    ]
    assert (await services.audit.verify()).intact


async def test_admin_reading_users_is_audited_with_how_many(
    services: Services, admin_account: Account
) -> None:
    """What an administrator read, as a record alone tells it: how many users, how many
    records (the event's own fields, not only its id)."""
    await new_account(services)
    with acting_as(admin_account):
        users, _ = await user_service.list_users(database=services.database, after=None, limit=2)
        records, _ = await audit_service.query_trail(
            database=services.database,
            audit=services.audit,
            query=AuditQuery(),
            before=None,
            limit=3,
        )
    mine = await services.audit.query(
        AuditQuery(actor=str(admin_account.user.id)), before_sequence=None, limit=2
    )
    assert [(r.entry.action, r.entry.detail.get("count")) for r in mine] == [
        ("audit.read", len(records)),
        ("user.list", len(users)),
    ]


def run_command(
    settings: Settings, command: str, *arguments: str, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUDIT_SECRET_KEY": settings.audit.secret_key.get_secret_value(),
        # The checkpoint the service keeps is under its Redis prefix.
        "REDIS_URL": settings.redis.url,
        "REDIS_KEY_PREFIX": settings.redis.key_prefix,
        **env_vars,
    }
{%- if cookiecutter.database == "postgres" %}
    env["DATABASE_URL"] = settings.database.url
{%- else %}
    env["MONGODB_URL"] = settings.mongodb.url
{%- endif %}
    return subprocess.run(  # noqa: S603 - this interpreter, a command named by the tests
        [sys.executable, "-m", "app.audit", command, *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Each command is a fresh interpreter importing the whole app (seconds on a busy machine),
# and a test runs up to three: more than the suite's default per-test limit. They run
# with the slow proofs (`pytest -m slow`), not in every quick run.
COMMANDS_TIMEOUT = pytest.mark.timeout(300)
COMMANDS_SLOW = pytest.mark.slow


@COMMANDS_SLOW
@COMMANDS_TIMEOUT
async def test_verify_command_catches_a_record_edited_in_the_database(
    services: Services, settings: Settings, account: Account
) -> None:
    await new_item(services, account)
    await all_sealed(services)
    intact = await asyncio.to_thread(run_command, settings, "verify")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "audit trail intact" in intact.stdout

    (last,) = await services.audit.recent(limit=1)
{%- if cookiecutter.database == "postgres" %}
    engine = _engine(services)
    edit = text("UPDATE audit_log SET actor = :actor WHERE sequence = :sequence")
    # The trigger refuses edits from any client...
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(edit, {"actor": "mallory", "sequence": last.sequence})
    # ...so the table's owner switches it off to tamper, as an attacker with that role could.
    toggle = "ALTER TABLE audit_log {} TRIGGER audit_log_append_only"
    async with engine.begin() as connection:
        await connection.execute(text(toggle.format("DISABLE")))
        await connection.execute(edit, {"actor": "mallory", "sequence": last.sequence})
        await connection.execute(text(toggle.format("ENABLE")))
    try:
        broken = await asyncio.to_thread(run_command, settings, "verify")
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(toggle.format("DISABLE")))
            await connection.execute(edit, {"actor": last.entry.actor, "sequence": last.sequence})
            await connection.execute(text(toggle.format("ENABLE")))
{%- else %}
    from app.storage.mongodb.database import MongoDatabase

    assert isinstance(services.database, MongoDatabase)
    # No code path edits audit records; someone with database access can.
    collection = services.database.db["audit_log"]
    await collection.update_one({"sequence": last.sequence}, {"$set": {"actor": "mallory"}})
    try:
        broken = await asyncio.to_thread(run_command, settings, "verify")
    finally:
        await collection.update_one(
            {"sequence": last.sequence}, {"$set": {"actor": last.entry.actor}}
        )
{%- endif %}
    assert broken.returncode == 1
    assert broken.stdout == (
        f"audit trail broken: record {last.sequence} at position {last.position} was altered: "
        "its seal does not match its content\n"
    )
    assert (await services.audit.verify()).intact


async def create_items(services: Services, account: Account, count: int) -> list[str]:
    ids = []
    with acting_as(account):
        for _ in range(count):
            ids.append(str((await new_item(services, account)).id))
    return ids


async def test_export_holds_everything_about_the_caller_and_nobody_else(
    services: Services, account: Account, other_account: Account
) -> None:
    mine = await create_items(services, account, 2)
    await create_items(services, other_account, 1)

    with acting_as(account):
        data = await audit_service.export_personal_data(
            database=services.database, audit=services.audit, user_id=account.user.id
        )

    me = str(account.user.id)
    assert data.user == account.user
    assert sorted(str(item.id) for item in data.items) == sorted(mine)
    actions = [record.action for record in data.audit_trail]
    assert actions[0] == "user.register"
    assert actions.count("item.create") == 2
    assert all(me in (record.actor, record.resource_id) for record in data.audit_trail)
    sequences = [record.sequence for record in data.audit_trail]
    assert sequences == sorted(sequences)
    # The export is itself recorded.
    assert ("user.export", "success") in await actions_of(services, me)


async def test_an_export_reads_the_items_records_together_however_many_items(
    services: Services, account: Account, other_account: Account
) -> None:
    """The records about each item were read one item at a time: an account of 300
    items took 2.5 s to export. Three items or thirty: the same reads."""
    await create_items(services, account, 3)
    await create_items(services, other_account, 30)

    async def export_round_trips(whose: Account) -> tuple[int, int]:
        async with background_paused(services):
            before = services.database.round_trips
            with acting_as(whose):
                data = await audit_service.export_personal_data(
                    database=services.database, audit=services.audit, user_id=whose.user.id
                )
            return services.database.round_trips - before, len(data.items)

    few, three = await export_round_trips(account)
    many, thirty = await export_round_trips(other_account)
    assert (three, thirty) == (3, 30)
    assert many == few


async def test_erasure_anonymises_keeps_the_trail_and_ends_every_session(
    services: Services, account: Account
) -> None:
    user_id = account.user.id
    item_ids = await create_items(services, account, 2)
    ttl = services.settings.cache.item_seconds
    # Cached before the erasure: it must not outlive it.
    cached = await service.get_item(
        database=services.database,
        cache=services.cache,
        item_id=UUID(item_ids[0]),
        ttl=ttl,
        principal=account.principal,
    )
    assert str(cached.id) == item_ids[0]

    async def erase(password: str) -> None:
        with acting_as(account):
            await audit_service.erase_account(
                database=services.database,
                passwords=services.passwords,
                tokens=services.tokens,
                cache=services.cache,
                user_id=user_id,
                data=Erasure(password=password),
            )

    with pytest.raises(WrongPasswordError):
        await erase("Not-the-passw0rd!")
    assert (await user_service.get_user(database=services.database, user_id=user_id)).email == (
        account.email
    )

    await erase(account.password)

    user = await user_service.get_user(database=services.database, user_id=user_id)
    assert user.email == audit_service.erased_email(user_id)
    assert user.id == user_id
    for item_id in item_ids:
        with pytest.raises(ItemNotFoundError):
            await service.get_item(
                database=services.database,
                cache=services.cache,
                item_id=UUID(item_id),
                ttl=ttl,
                principal=account.principal,
            )
    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(account.tokens.access_token)
    with pytest.raises(UnauthorizedError):
        await login(services, account.email, account.password)

    # The trail is kept: everything before the erasure, and the erasure itself.
    kept = await services.audit.query(
        AuditQuery(resource_id=str(user_id)), before_sequence=None, limit=50
    )
    actions = [record.entry.action for record in kept]
    assert actions[0] == "user.erase"
    assert "user.register" in actions
    deleted = await services.audit.query(
        AuditQuery(actor=str(user_id), action="item.delete"), before_sequence=None, limit=50
    )
    assert sorted(record.entry.resource_id or "" for record in deleted) == sorted(item_ids)
    assert (await services.audit.verify()).intact


async def test_admin_query_filters_and_pages_and_is_itself_audited(
    services: Services, account: Account, admin_account: Account
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    item_ids = await create_items(services, account, 3)
    query = AuditQuery(actor=str(account.user.id), action="item.create", since=started)
    with acting_as(admin_account):
        first, before = await audit_service.query_trail(
            database=services.database, audit=services.audit, query=query, before=None, limit=2
        )
        second, end = await audit_service.query_trail(
            database=services.database, audit=services.audit, query=query, before=before, limit=2
        )
        none, _ = await audit_service.query_trail(
            database=services.database,
            audit=services.audit,
            query=query.model_copy(update={"until": started}),
            before=None,
            limit=2,
        )

    assert [record.resource_id for record in first + second] == item_ids[::-1]
    assert before is not None
    assert end is None
    assert none == []
    assert ("audit.read", "success") in await actions_of(services, str(admin_account.user.id))


async def test_seal_rounds_and_a_purge_in_one_process_take_turns(
    services: Services, account: Account
) -> None:
    """One process, one audit log: its rounds and a purge exclude each other as two
    processes' do, and none of them fails for the other's sake."""
    async with background_paused(services):
        await create_items(services, account, 12)
        # Nothing is old enough to remove: the purge seals what is pending, then records
        # itself, while single-record rounds run beside it.
        long_ago = datetime.now(UTC) - timedelta(days=3650)
        outcomes = await asyncio.gather(
            *(services.audit.seal_pending(limit=1) for _ in range(6)),
            services.audit.purge(before=long_ago),
            return_exceptions=True,
        )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert failures == []
    report = await services.audit.verify()
    assert report.intact
    assert report.unsealed == 0


{%- if cookiecutter.database == "mongodb" %}


async def test_a_round_cancelled_while_taking_the_lease_gives_it_back(
    services: Services, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping sealer is cancelled where it waits, the lease's take too: granted by the
    server but never seen by the round, it was held on for its whole term, and a purge
    waiting for it gave up."""
    take = MongoLease.take

    async def granted_then_cancelled(lease: MongoLease, seconds: float) -> int | None:
        await take(lease, seconds)
        raise asyncio.CancelledError

    async with background_paused(services):
        await create_items(services, account, 1)
        monkeypatch.setattr(MongoLease, "take", granted_then_cancelled)
        with pytest.raises(asyncio.CancelledError):
            await services.audit.seal_pending(limit=1)
        monkeypatch.setattr(MongoLease, "take", take)
        # Another round, another owner: the lease is free at once.
        assert await services.audit.seal_pending(limit=1) is not None
{%- endif %}


@asynccontextmanager
async def legal_minimum_lifted(services: Services) -> AsyncIterator[None]:
    """Lets a test purge records seconds old, which the database refuses otherwise."""
{%- if cookiecutter.database == "postgres" %}
    # The owner (the test suite's role) replaces the database's minimum, then restores it.
    define = (
        "CREATE OR REPLACE FUNCTION audit_legal_minimum() RETURNS interval LANGUAGE sql "
        "STABLE AS $$ SELECT interval '{}' $$"
    )
    async with _engine(services).begin() as connection:
        await connection.execute(text(define.format("0 days")))
    try:
        yield
    finally:
        async with _engine(services).begin() as connection:
            await connection.execute(text(define.format("1826 days")))
{%- else %}
    # MongoDB holds no minimum of its own: the purge command's check is the only one.
    yield
{%- endif %}


@COMMANDS_SLOW
@COMMANDS_TIMEOUT
async def test_purge_removes_only_records_older_than_the_cut_off(
    services: Services, settings: Settings, account: Account
) -> None:
    (old,) = await create_items(services, account, 1)
    cut_off = datetime.now(UTC)
    await asyncio.sleep(0.01)
    (recent,) = await create_items(services, account, 1)

    async with legal_minimum_lifted(services):
        report = await services.audit.purge(before=cut_off)

    assert report.removed >= 1
    removed = await services.audit.query(AuditQuery(resource_id=old), before_sequence=None, limit=5)
    kept = await services.audit.query(AuditQuery(resource_id=recent), before_sequence=None, limit=5)
    assert removed == []
    assert [record.entry.action for record in kept] == ["item.create"]
    (last,) = await services.audit.recent(limit=1)
    assert (last.entry.action, last.entry.actor) == (PURGE, "system")
    assert last.entry.detail["removed"] == report.removed
    # The chain still verifies from the anchor the purge record holds.
    chain = await services.audit.verify()
    assert chain.intact
    assert chain.anchor_position == last.entry.detail["anchor_position"] > 0
    verified = await asyncio.to_thread(run_command, settings, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "purged" in verified.stdout


@COMMANDS_SLOW
@COMMANDS_TIMEOUT
async def test_purge_command_keeps_the_legal_minimum(
    services: Services, settings: Settings, account: Account
) -> None:
    await all_sealed(services)
    (before,) = await services.audit.recent(limit=1)
    refused = await asyncio.to_thread(
        run_command,
        settings,
        "purge",
        AUDIT_RETENTION_DAYS="30",
        AUDIT_LEGAL_MINIMUM_DAYS="365",
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "legal minimum" in refused.stderr
    assert await services.audit.recent(limit=1) == [before]

    # With the defaults (5 years) nothing recorded by this suite is old enough to go.
    purged = await asyncio.to_thread(run_command, settings, "purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "0 records" in purged.stdout
    (last,) = await services.audit.recent(limit=1)
    assert last.sequence > before.sequence
    assert (last.entry.action, last.entry.detail["removed"]) == (PURGE, 0)
    assert (await services.audit.verify()).intact
{%- if cookiecutter.database == "postgres" %}


async def test_the_database_refuses_a_record_inserted_sealed_or_dated_away_from_now(
    services: Services,
) -> None:
    """The service's role inserts records; one inserted with a position and a seal took
    a place in the chain, which the sealer then built on, and one could be dated years
    back, or at infinity."""
    forged = text(
        "INSERT INTO audit_log (occurred_at, actor, action, resource_type, outcome, detail,"
        " position, previous, seal) VALUES (CAST(CAST(:at AS text) AS timestamptz), 'system',"
        " 'forged', 'x',"
        " 'success', '{}', :position, :previous, :seal)"
    )
    now = {"at": "now", "position": None, "previous": None, "seal": None}
    for forgery in (
        {"position": 10**12},
        {"previous": "0" * 64},
        {"seal": "a" * 64},
        {"at": "2001-01-01T00:00:00Z"},
        {"at": "infinity"},
        {"at": "-infinity"},
    ):
        async with _engine(services).connect() as connection:
            with pytest.raises(DBAPIError, match="append-only: INSERT refused"):
                await connection.execute(forged, now | forgery)
            await connection.rollback()
    kept = {record.entry.action for record in await services.audit.recent(limit=100)}
    assert "forged" not in kept


async def test_audit_seal_only_extends_the_chain(services: Services, account: Account) -> None:
    """Given any position or seal, one record sealed out of place stopped all sealing."""
    seal = text(
        "SELECT audit_seal(CAST(:sequence AS bigint[]), CAST(:position AS bigint[]),"
        " CAST(:previous AS text[]), CAST(:seal AS text[]))"
    )
    async with background_paused(services):
        await services.audit.seal_pending(limit=1000)
        (item,) = await create_items(services, account, 1)
        (pending,) = await services.audit.query(
            AuditQuery(resource_id=item), before_sequence=None, limit=1
        )
        (head,) = [r for r in await services.audit.recent(limit=50) if r.position is not None][:1]
        assert head.position is not None
        right = {
            "sequence": [pending.sequence],
            "position": [head.position + 1],
            "previous": [head.seal],
            "seal": ["b" * 64],
        }
        for wrong in (
            {"position": [head.position + 1000]},
            {"position": [head.position]},
            {"previous": ["0" * 64]},
            {"seal": ["00"]},
            {"seal": ["B" * 64]},
            {"sequence": [pending.sequence, pending.sequence]},
            # Records not there to seal: each position given must be filled (a gap).
            {"sequence": [-1]},
            {"sequence": [None]},
            {"sequence": [head.sequence]},
        ):
            async with _engine(services).connect() as connection:
                with pytest.raises(DBAPIError, match="audit_seal refused"):
                    await connection.execute(seal, right | wrong)
                await connection.rollback()
        # The sealer still seals it, and the chain holds.
        round_ = await services.audit.seal_pending(limit=1000)
        assert round_ is not None
        assert round_.sealed >= 1
    assert (await services.audit.verify()).intact


async def test_the_owners_functions_use_no_temporary_table_of_the_caller(
    services: Services,
) -> None:
    """They ran with the caller's search path, temporary tables first: a temporary
    `audit_log` with a trigger ran the caller's code as the owner (the superuser here)."""
    async with _engine(services).connect() as connection:
        await connection.execute(text("CREATE TEMP TABLE audit_log (LIKE public.audit_log)"))
        await connection.execute(
            text(
                "INSERT INTO pg_temp.audit_log (sequence, occurred_at, actor, action,"
                " resource_type, outcome, detail, position) VALUES (1, now() - interval"
                " '4000 days', 'x', 'x', 'x', 'success', '{}', 1)"
            )
        )
        purge = text("SELECT audit_purge(now() - interval '3650 days', 1)")
        try:
            async with connection.begin_nested():
                await connection.execute(purge)
        except DBAPIError:
            pass  # refused on the real table: nothing there is old enough
        left = await connection.scalar(text("SELECT count(*) FROM pg_temp.audit_log"))
        await connection.rollback()
    assert left == 1


async def test_the_database_refuses_to_delete_a_record_newer_than_the_cut_off(
    services: Services,
) -> None:
    (last,) = await services.audit.recent(limit=1)
    cut_off = (last.entry.occurred_at - timedelta(days=1)).isoformat()
    async with _engine(services).connect() as connection:
        await connection.execute(
            text("SELECT set_config('audit.purge_before', :cut_off, true)"), {"cut_off": cut_off}
        )
        delete = text("DELETE FROM audit_log WHERE sequence = :sequence")
        with pytest.raises(DBAPIError, match="append-only"):
            await connection.execute(delete, {"sequence": last.sequence})
        await connection.rollback()
    # Still there, unchanged; the sealer or another test may have sealed or added records
    # since, so it is looked for by its place, not as the newest.
    kept = {record.sequence: record.entry for record in await services.audit.recent(limit=100)}
    assert kept.get(last.sequence) == last.entry
{%- endif %}


async def test_password_and_role_changes_are_audited(services: Services, account: Account) -> None:
    user = str(account.user.id)
    with acting_as(account):
        await user_service.change_password(
            database=services.database,
            passwords=services.passwords,
            tokens=services.tokens,
            user_id=account.user.id,
            data=PasswordChange(current_password=PASSWORD, new_password="Brand-new-passw0rd!"),
        )
    await set_role(services, account.user.id, "admin")
    records = await services.audit.recent(limit=200)
    mine = [(r.entry.action, r.entry.outcome) for r in records if r.entry.resource_id == user]
    assert ("user.password_change", "success") in mine
    assert ("user.role_change", "success") in mine


def records_of(records: list[SealedEntry], response: Response) -> list[tuple[str, str]]:
    request_id = response.headers["x-request-id"]
    return [(r.entry.action, r.entry.outcome) for r in records if r.entry.request_id == request_id]


async def test_refusals_are_audited(
    client: AsyncClient, services: Services, account: Account, other_account: Account
) -> None:
    """Another user's item, and a token that is not valid, each leave a record."""
    created = await api.create_item(client, account, unique("private"))
    denied = await api.read_item(client, other_account, api.item_id(created))
    rejected = await api.read_item(client, with_bad_token(other_account), api.item_id(created))
    # Another owner's list: an administrators' operation (it was refused unrecorded).
    listed = await api.list_of_owner(client, other_account, account)
    records = await services.audit.recent(limit=200)
    assert records_of(records, denied) == [("item.access", "denied")]
    assert records_of(records, rejected) == [("session.authenticate", "failed")]
    assert records_of(records, listed) == [("admin.access", "denied")]


async def test_refused_refreshes_and_credentials_of_another_kind_are_audited(
    client: AsyncClient, services: Services, account: Account
) -> None:
    """Only a reused refresh token was recorded: a forged one, an access token in its
    place and one of an ended session were refused with no record, as were Basic
    credentials where a bearer token belongs."""
    ended = await new_account(services)
    assert await actions.logout(client, actions.new_request_id(), ended.tokens.access_token)
    refreshes = {
        "forged": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abc",
        "an access token": account.tokens.access_token,
        "of an ended session": ended.tokens.refresh_token,
    }
    sent: dict[str, str] = {}
    for name, token in refreshes.items():
        sent[name] = actions.new_request_id()
        assert not await actions.refresh(client, sent[name], token), name
    sent["Basic"] = actions.new_request_id()
    basic = {"Authorization": "Basic YTpi", "X-Request-ID": sent["Basic"]}
    assert not api.succeeded(await api.create_item(client, account, unique("basic"), basic))
    records = await services.audit.recent(limit=200)
    for name, request_id in sent.items():
        found = [
            (r.entry.action, r.entry.outcome) for r in records if r.entry.request_id == request_id
        ]
        assert found == [("session.authenticate", "failed")], name


async def test_an_admins_reads_of_other_users_items_are_recorded_per_owner(
    client: AsyncClient, services: Services
) -> None:
    """Whose data an administrator read, and how much, by id or in a list; nobody's own
    reads are recorded."""
    owner, admin = await new_account(services), await new_account(services, admin=True)
    theirs = [await api.create_item(client, owner, unique("theirs")) for _ in range(2)]
    own = await api.create_item(client, admin, unique("own"))
    by_id = await api.read_item(client, admin, api.item_id(theirs[0]))
    listed = await api.list_of_owner(client, admin, owner)
    own_reads = [
        await api.read_item(client, admin, api.item_id(own)),
        await api.list_of_owner(client, admin, admin),
        await api.read_item(client, owner, api.item_id(theirs[1])),
        await api.list_page(client, owner),
    ]
    assert all(map(api.succeeded, [by_id, listed, *own_reads]))
    records = await services.audit.recent(limit=200)

    def read(response: Response) -> list[tuple[str, str, str | None, object]]:
        request_id = response.headers["x-request-id"]
        return [
            (r.entry.action, r.entry.actor, r.entry.resource_id, r.entry.detail.get("count"))
            for r in records
            if r.entry.request_id == request_id
        ]

    admin_id, owner_id = str(admin.user.id), str(owner.user.id)
    assert read(by_id) == [("admin.read_items", admin_id, owner_id, 1)]
    assert read(listed) == [("admin.read_items", admin_id, owner_id, 2)]
    assert [read(response) for response in own_reads] == [[], [], [], []]
    export = await audit_service.export_personal_data(
        database=services.database, audit=services.audit, user_id=owner.user.id
    )
    exported = [(r.action, r.resource_id) for r in export.audit_trail]
    assert exported.count(("admin.read_items", owner_id)) == 2


{%- if cookiecutter.api == "graphql" %}


async def test_an_admins_reads_of_other_users_accounts_by_node_are_recorded(
    client: AsyncClient, services: Services
) -> None:
    """`node` and `nodes` on User ids gave an administrator other users' emails, and
    nothing was recorded; now as `users` is (how many); nobody's own account is."""
    admin = await new_account(services, admin=True)
    others = [await new_account(services) for _ in range(2)]
    query = "query N($ids: [ID!]!) { nodes(ids: $ids) { ... on User { email } } }"

    async def read(account: Account, *users: Account) -> tuple[set[tuple[str, str]], int]:
        """What the request's records say: which actions by whom, and how many accounts
        they count (the request's loads may come in more than one batch)."""
        request_id = actions.new_request_id()
        ids = [str(GlobalID("User", str(user.user.id))) for user in users]
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": {"ids": ids}},
            headers=account.headers | {"X-Request-ID": request_id},
        )
        assert [node["email"] for node in response.json()["data"]["nodes"]] == [
            user.email for user in users
        ]
        found = [r.entry for r in await services.audit.recent(limit=100)]
        mine = [entry for entry in found if entry.request_id == request_id]
        return {(e.action, e.actor) for e in mine}, sum(e.detail["count"] for e in mine)

    admin_id = str(admin.user.id)
    assert await read(admin, others[0]) == ({("user.list", admin_id)}, 1)
    assert await read(admin, *others, admin) == ({("user.list", admin_id)}, 2)
    assert await read(admin, admin) == (set(), 0)
    assert await read(others[0], others[0]) == (set(), 0)
{%- endif %}


async def test_a_token_of_an_ended_session_is_recorded_against_its_account(
    client: AsyncClient, services: Services
) -> None:
    """A valid token replayed after its session ended (a logout, a password or role
    change, an erasure) names the account it was used against; a bad token names none."""
    owner = await new_account(services)
    created = await api.create_item(client, owner, unique("kept"))
    await services.tokens.revoke_all(str(owner.user.id))
    replayed = await api.read_item(client, owner, api.item_id(created))
    forged = await api.read_item(client, with_bad_token(owner), api.item_id(created))
    records = {r.entry.request_id: r.entry for r in await services.audit.recent(limit=200)}
    for response, named in ((replayed, str(owner.user.id)), (forged, "anonymous")):
        record = records[response.headers["x-request-id"]]
        assert (record.action, record.outcome) == ("session.authenticate", "failed")
        assert (record.actor, record.resource_id) == ("anonymous", named)


def with_bad_token(account: Account) -> Account:
    tokens = account.tokens.model_copy(update={"access_token": "not.a.token"})
    return dataclasses.replace(account, tokens=tokens)


async def test_a_flood_of_refusals_is_recorded_only_up_to_the_address_allowance(
    app: FastAPI, settings: Settings, services: Services, account: Account
) -> None:
    """Anonymous bad requests cannot fill the trail: past the allowance of their address
    they are counted in a metric, not recorded."""
    strict = override(settings, "rate_limit", failure_records_per_ip_per_minute=2)
    # An IPv6 client counted by its /64, as every per-address limit counts it: each
    # request from another address of it (the allowance was counted per address).
    network = f"2001:db8:{uuid4().int % 65536:x}:{uuid4().int % 65536:x}::"
    refused = []
    async with serving(app, settings=strict):
        for host in range(1, 6):
            transport = ASGITransport(app=app, client=(f"{network}{host}", 4321))
            async with AsyncClient(transport=transport, base_url="http://t") as flood:
                refused.append(await api.create_item(flood, with_bad_token(account), "x"))
    records = await services.audit.recent(limit=200)
    assert [records_of(records, response) for response in refused] == [
        [("session.authenticate", "failed")],
        [("session.authenticate", "failed")],
        [],
        [],
        [],
    ]


async def test_a_users_refusals_are_recorded_though_anonymous_junk_spent_their_address(
    app: FastAPI, settings: Settings, services: Services, account: Account
) -> None:
    """The allowance was one per address for everyone: anonymous junk from a shared
    address (an office, a NAT) left a signed-in user's refusals there unrecorded."""
    strict = override(settings, "rate_limit", failure_records_per_ip_per_minute=2)
    owner = await new_account(services)
    office = (f"2001:db8:{uuid4().int % 65536:x}:{uuid4().int % 65536:x}::1", 4321)
    async with serving(app, settings=strict):
        transport = ASGITransport(app=app, client=office)
        async with AsyncClient(transport=transport, base_url="http://t") as shared:
            created = await api.create_item(shared, owner, unique("private"))
            junk = [await api.create_item(shared, with_bad_token(account), "x") for _ in range(3)]
            denied = [await api.read_item(shared, account, api.item_id(created)) for _ in range(2)]
    records = await services.audit.recent(limit=200)
    failed = [("session.authenticate", "failed")]
    assert [records_of(records, response) for response in junk] == [failed, failed, []]
    assert [records_of(records, response) for response in denied] == [
        [("item.access", "denied")],
        [("item.access", "denied")],
    ]


async def test_an_erasure_committed_while_redis_is_down_still_ends_every_session(
    services: Services, settings: Settings, account: Account
) -> None:
    down = Cache(unreachable(settings, "redis").redis)
    try:
        await audit_service.erase_account(
            database=services.database,
            passwords=services.passwords,
            tokens=Tokens(settings.auth, down, issuer=services.tokens.issuer),
            cache=down,
            user_id=account.user.id,
            data=Erasure(password=PASSWORD),
        )
    finally:
        await down.close()
    with pytest.raises(UnauthorizedError):
        await auth.refresh(
            database=services.database,
            tokens=services.tokens,
            refresh_token=account.tokens.refresh_token,
        )
    with pytest.raises(UnauthorizedError):
        await services.tokens.authenticate(account.tokens.access_token)


class InclusiveBound:
    """The audit log with a keyset bug a developer could make, `<=` for `<`: the last
    record of a page comes back as the next page, so its cursor never moves."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    async def query(
        self,
        query: AuditQuery,
        *,
        before_sequence: int | None,
        limit: int,
        resource_ids: Sequence[str] = (),
    ) -> list[SealedEntry]:
        bound = None if before_sequence is None else before_sequence + 1
        return await self.audit.query(
            query, before_sequence=bound, limit=limit, resource_ids=resource_ids
        )


class CursorIgnored:
    """Items whose `find` ignores the cursor: every page is the first one."""

    def __init__(self, items: ItemRepository) -> None:
        self.items = items

    async def find(self, query: ItemQuery, *, after: Cursor | None, limit: int) -> list[ItemPublic]:
        return await self.items.find(query, after=None, limit=limit)


async def test_export_with_a_stuck_audit_cursor_fails_with_a_name_not_a_hang(
    services: Services, account: Account
) -> None:
    await create_items(services, account, 1)
    stuck = cast(AuditLog, InclusiveBound(services.audit))
    with acting_as(account), pytest.raises(PagingStuckError, match="did not advance"):
        await audit_service.export_personal_data(
            database=services.database, audit=stuck, user_id=account.user.id
        )


async def test_export_with_a_stuck_item_cursor_fails_with_a_name_not_a_hang(
    services: Services, account: Account
) -> None:
    await create_items(services, account, 2)
    async with services.database.unit_of_work() as uow:
        stuck = cast(UnitOfWork, SimpleNamespace(items=CursorIgnored(uow.items)))
        with pytest.raises(PagingStuckError, match="did not advance"):
            await audit_service._owned_items(stuck, account.user.id)


async def sealed_chain(services: Services) -> list[SealedEntry]:
    records = await services.audit.recent(limit=100_000)
    return sorted((r for r in records if r.position is not None), key=lambda r: r.position or 0)


@COMMANDS_SLOW
@pytest.mark.parametrize("which", ["first", "middle", "newest", "all"])
async def test_verify_names_the_records_removed_even_by_the_superuser(
    services: Services, settings: Settings, account: Account, which: str
) -> None:
    await create_items(services, account, 3)
    await all_sealed(services)
    chain = await sealed_chain(services)
    first, middle, newest = chain[0], chain[len(chain) // 2], chain[-1]
    removed, expected = {
        "first": ([first], f"missing: position {first.position} (before record "),
        "middle": ([middle], f"missing: position {middle.position} (before record "),
        # Only the checkpoint the service keeps outside the database shows these.
        "newest": ([newest], f"missing: position {newest.position} (the checkpoint of "),
        "all": (None, f"missing: positions {first.position} to {newest.position} (the checkpoint"),
    }[which]

    sequences = None if removed is None else [record.sequence for record in removed]
    async with records_removed(services, sequences):
        result = await asyncio.to_thread(run_command, settings, "verify")

    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"audit trail broken: {expected}"), line
    checkpoint = await stored_checkpoint(services.cache)
    assert checkpoint is not None
    assert (await services.audit.verify(checkpoints=[checkpoint])).intact


@COMMANDS_SLOW
async def test_verify_checks_a_checkpoint_kept_elsewhere(
    services: Services, settings: Settings, account: Account
) -> None:
    """The copy an operator keeps (the broker's event, the log line) works without Redis."""
    await create_items(services, account, 1)
    await all_sealed(services)
    checkpoint = await stored_checkpoint(services.cache)
    assert checkpoint is not None
    (newest,) = await services.audit.recent(limit=1)
    async with records_removed(services, [newest.sequence]):
        result = await asyncio.to_thread(
            run_command,
            settings,
            "verify",
            "--checkpoint",
            checkpoint.model_dump_json(),
            REDIS_KEY_PREFIX=f"elsewhere-{uuid4().hex}:",  # nothing kept under this prefix
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"missing: position {newest.position} (the checkpoint" in result.stdout


def test_verify_refuses_what_is_not_a_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        audit_command(["verify", "--checkpoint", "nonsense"])
    assert exit_.value.code == 2
    assert "not a checkpoint: 'nonsense'" in capsys.readouterr().err


async def test_the_sealer_signs_no_checkpoint_of_a_head_it_did_not_seal(
    services: Services, settings: Settings, account: Account
) -> None:
    """A row put at the head of the chain behind the service's back, chained to the real
    head but sealed without the key, is never vouched for by a checkpoint: not by the
    sealer running, nor by one started afresh (whose next broadcast is due at once)."""
    await create_items(services, account, 1)
    real = await all_sealed(services)
    fresh = AuditSealer(
        services.audit,
        database=services.database,
        cache=services.cache,
        settings=settings.audit,
        key=settings.audit.secret_key.get_secret_value().encode(),
    )
    async with record_forged(services, seal="a" * 64):
        for sealer in (services.sealer, fresh):
            await eventually(lambda sealer=sealer: in_turn(sealer.run_once))
            checkpoint = await stored_checkpoint(services.cache)
            assert checkpoint is not None
            assert (checkpoint.position, checkpoint.seal) == (real.position, real.seal)
        report = await services.audit.verify()
        assert not report.intact
    assert (await services.audit.verify()).intact


async def test_records_kept_unsealed_by_a_held_turn_show_in_a_metric_and_the_log(
    services: Services, settings: Settings, account: Account
) -> None:
    """Whoever keeps the sealer from its turn keeps new records unsealed, protected by the
    database's privileges alone: every instance reports their age, and logs an error
    past the window (here none), for the AuditSealingStalled alert."""
    watcher = AuditSealer(
        services.audit,
        database=services.database,
        cache=services.cache,
        settings=settings.audit.model_copy(update={"window_seconds": 0}),
        key=settings.audit.secret_key.get_secret_value().encode(),
    )
    await all_sealed(services)
    assert await watcher.watch_unsealed() == 0.0
    async with sealers_turn_held(services):
        await create_items(services, account, 1)
        assert await services.sealer.run_once() is None  # not its turn
        await asyncio.sleep(0.01)
        with captured_logs() as logs:
            age = await watcher.watch_unsealed()
        assert age > 0
        assert (REGISTRY.get_sample_value("audit_unsealed_oldest_age_seconds") or 0) > 0
        (line,) = [json.loads(text) for text in logs.getvalue().splitlines()]
        assert (line["event"], line["level"]) == ("audit_sealing_stalled", "error")
    await all_sealed(services)
    assert await watcher.watch_unsealed() == 0.0


@pytest.mark.parametrize("field", sorted(NOT_A_RECORDS))
async def test_a_record_altered_past_reading_is_named_by_verify_and_shown_to_admins(
    client: AsyncClient, services: Services, account: Account, admin_account: Account, field: str
) -> None:
    """A value of another type or outside its choices, written behind the service's back,
    is reported with the record's number; the trail stays readable around it."""
    await create_items(services, account, 1)
    await all_sealed(services)
    (newest,) = await services.audit.recent(limit=1)
    async with record_altered(services, newest.sequence, field):
        report = await services.audit.verify()
        assert not report.intact
        assert report.first_broken == newest.sequence
        assert f"record {newest.sequence} " in report.problems[0]
        assert f"cannot be read ({field})" in report.problems[0]
        (shown,) = await services.audit.recent(limit=1)
        assert (shown.sequence, shown.unreadable) == (newest.sequence, field)
        token = admin_account.tokens.access_token
        assert await actions.read_trail(client, actions.new_request_id(), token)
    assert (await services.audit.verify()).intact


@COMMANDS_SLOW
async def test_the_sealer_refuses_to_extend_a_chain_cut_short(
    services: Services, settings: Settings, account: Account
) -> None:
    """The next record is not chained to a truncated end: the cut stays visible.
{%- if cookiecutter.database == "mongodb" %}

    On MongoDB this detection is the protection: nothing in the database stops a
    delete. The nx-27017 stand-in cannot show two things real MongoDB does: the
    record and its change committed in one transaction (it has no replica set), and a
    second sealer refused the lease by a conflicting upsert (it does not raise there;
    the lease's owner is checked again after the upsert, and the unique position index
    fences a sealer that lost it).
{%- else %}

    On PostgreSQL only the database's superuser (or the table's owner) can delete a
    record, with triggers off; this is what it leaves behind.
{%- endif %}
    """
    await create_items(services, account, 1)
    await all_sealed(services)
    (newest,) = await services.audit.recent(limit=1)

    async with records_removed(services, [newest.sequence]):
        (after_cut,) = await create_items(services, account, 1)
        with pytest.raises(ChainTruncatedError):
            await seal_once(services)
        result = await asyncio.to_thread(run_command, settings, "verify")
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"missing: position {newest.position} (the checkpoint" in result.stdout
        (appended,) = await services.audit.query(
            AuditQuery(resource_id=after_cut), before_sequence=None, limit=1
        )
        assert appended.position is None

    # Put back, the chain reaches its checkpoint again and sealing resumes.
    await all_sealed(services)
    (appended,) = await services.audit.query(
        AuditQuery(resource_id=after_cut), before_sequence=None, limit=1
    )
    assert appended.position == (newest.position or 0) + 1
    assert (await services.audit.verify()).intact
{%- if cookiecutter.database == "postgres" %}


def readme_grants(role: str, database: str) -> list[str]:
    """The statements the README tells operators to run for the service's role."""
    readme = Path("README.md").read_text()
    block = readme.split("```sql\n", 1)[1].split("```", 1)[0]
    lines = (line.strip() for line in block.splitlines())
    code = "\n".join(line for line in lines if not line.startswith("--"))
    code = code.replace("service_role", role).replace("service_db", f'"{database}"')
    return [statement.strip() for statement in code.split(";") if statement.strip()]


async def test_the_role_the_readme_grants_cannot_remove_or_change_a_record(
    services: Services, settings: Settings, account: Account
) -> None:
    engine = _engine(services)
    role, password = f"audit_app_{uuid4().hex[:8]}", uuid4().hex
    async with engine.begin() as connection:
        database = str(await connection.scalar(text("SELECT current_database()")))
        await connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    url = make_url(settings.database.url).set(username=role, password=password)
    limited = build_services(
        override(settings, "database", url=url.render_as_string(hide_password=False))
    )
    try:
        async with engine.begin() as connection:
            for statement in readme_grants(role, database):
                await connection.execute(text(statement))
        await limited.database.connect()
        # The service works under that role: an audited change, then its sealing.
        item = await service.create_item(
            database=limited.database,
            owner=account.principal,
            data=ItemCreate(name=unique("limited")),
        )
        await eventually(lambda: limited.audit.seal_pending(limit=1000))
        (record,) = await limited.audit.query(
            AuditQuery(resource_id=str(item.id)), before_sequence=None, limit=1
        )
        assert record.position is not None

        assert isinstance(limited.database, PostgresDatabase)
        attempts = [
            "DELETE FROM audit_log WHERE sequence = :sequence",
            "UPDATE audit_log SET actor = 'mallory' WHERE sequence = :sequence",
            "TRUNCATE audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
            "DROP TABLE audit_log",
            # The purge function, asked for a cut-off inside the legal minimum.
            "SELECT audit_purge(now(), :sequence)",
            # A temporary table of the name, which the owner's functions once read first.
            "CREATE TEMP TABLE audit_log (LIKE public.audit_log)",
        ]
        engine_as_role = limited.database.engine

        async def tamper(statement: str) -> None:
            async with engine_as_role.begin() as connection:
                # The custom setting that once opened the delete trigger opens nothing.
                await connection.execute(
                    text("SELECT set_config('audit.purge_before', :now, true)"),
                    {"now": datetime.now(UTC).isoformat()},
                )
                params = {"sequence": record.sequence} if ":sequence" in statement else {}
                await connection.execute(text(statement), params)

        for attempt in attempts:
            with pytest.raises(DBAPIError):
                await tamper(attempt)
        # Sealing only extends the chain: a sealed record cannot be sealed again elsewhere.
        async with limited.database.engine.begin() as connection:
            with pytest.raises(DBAPIError, match="audit_seal refused"):
                await connection.scalar(
                    text(
                        "SELECT audit_seal(ARRAY[:sequence]::bigint[], "
                        "ARRAY[999999999]::bigint[], ARRAY['forged']::text[], "
                        "ARRAY['forged']::text[])"
                    ),
                    {"sequence": record.sequence},
                )
        assert await limited.audit.query(
            AuditQuery(resource_id=str(item.id)), before_sequence=None, limit=1
        ) == [record]
    finally:
        await limited.database.close()
        await limited.cache.close()
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP OWNED BY {role}"))
            await connection.execute(text(f"DROP ROLE {role}"))
    assert (await services.audit.verify()).intact


async def test_audited_writes_take_no_lock_and_a_late_commit_is_sealed_after(
    services: Services, account: Account
) -> None:
    """Identity values commit out of order: a record that commits late is sealed later."""
    assert isinstance(services.audit, PostgresAuditLog)
    database = services.database
    assert isinstance(database, PostgresDatabase)
    late = AuditEntry(action="item.create", resource_type="item", resource_id=unique("late"))
    async with database.engine.begin() as open_transaction:
        await services.audit.append(open_transaction, [late])  # its sequence, uncommitted
        # Another audited write while this transaction is open.
        other = asyncio.create_task(new_item(services, account))

        async def finished_or_blocked() -> str | None:
            if other.done():
                return "finished"
            async with database.engine.connect() as connection:
                waiting = await connection.scalar(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                )
            return "blocked on a lock" if waiting else None

        outcome = await eventually(finished_or_blocked)
        if outcome != "finished":
            other.cancel()
        assert outcome == "finished"
        created = await other
        await all_sealed(services)
        (sooner,) = await services.audit.query(
            AuditQuery(resource_id=str(created.id)), before_sequence=None, limit=1
        )
        assert sooner.position is not None
    await all_sealed(services)
    (later,) = await services.audit.query(
        AuditQuery(resource_id=late.resource_id), before_sequence=None, limit=1
    )
    assert later.sequence < sooner.sequence
    assert (later.position or 0) > sooner.position
    assert (await services.audit.verify()).intact
{%- endif %}


FULL_WIDTH, ARABIC_INDIC, DEVANAGARI = 0xFF10, 0x0660, 0x0966


def in_digits(text: str, zero: int) -> str:
    """`text` with its digits written in another script, from its zero's code point."""
    return "".join(chr(zero + int(char)) if char.isdigit() else char for char in text)


# (text as it could reach a log, the part that must not survive masking)
MUST_MASK = [
    ("contact kim.minji@example.co.kr", "kim.minji@example.co.kr"),
    ("GET /users?email=jane.doe%40example.com&x=1", "jane.doe%40example.com"),
    ("GET /users?email=jane%2Bnews%40Example.COM", "jane%2Bnews%40Example.COM"),
    ("rrn 900101-1234567", "900101-1234567"),
    ("rrn 900101 1234567", "900101 1234567"),
    ("rrn 900101\u20132234567", "900101\u20132234567"),
    ("rrn 9001011234567", "9001011234567"),
    ("call 010-1234-5678", "1234-5678"),
    ("call 010.1234.5678", "1234.5678"),
    ("call 010 1234 5678", "1234 5678"),
    ("call 01012345678", "01012345678"),
    ("call +82 10-1234-5678", "1234-5678"),
    ("call +82.10.1234.5678", "1234.5678"),
    ("office 02-123-4567", "123-4567"),
    ("office (02) 1234-5678", "1234-5678"),
    ("office (555) 123-4567", "123-4567"),
    ("office 555.123.4567", "555.123.4567"),
    ("card 4111 1111 1111 1111", "4111 1111 1111 1111"),
    ("card 5500-0000-0000-0004", "5500-0000-0000-0004"),
    ("card 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),
    ("login failed: password=hunter2 for id 7", "hunter2"),
    ("form password=Tr0ub4dor&3&next=/", "Tr0ub4dor"),
    ("new_password: 'horse battery'", "horse battery"),
    ("body refresh_token: abc.def.ghi", "abc.def.ghi"),
    ('{"refresh_token": "r-7f3a9c"}', "r-7f3a9c"),
    ("otp=493021", "493021"),
    ("client_secret=s3cr3t-value", "s3cr3t-value"),
    ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
    ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
    ("AUTHORIZATION: BEARER abc.def-ghi", "abc.def-ghi"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "eyJzdWIiOiIxIn0"),
    # A JWT in a URL: its dots percent-encoded once or twice, after `/` encoded, or `_`.
    ("GET /cb/eyJhbGciOiJIUzI1NiJ9%2EeyJzdWIiOiIxIn0%2Ec2lnbmF0dXJl", "c2lnbmF0dXJl"),
    ("GET /cb%2FeyJhbGciOiJIUzI1NiJ9%252EeyJzdWIiOiIxIn0%252Ec2lnbmF0dXJl", "c2lnbmF0dXJl"),
    ("jwt_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "c2lnbmF0dXJl"),
    # Its header left out (every token of a service has the same): still the token.
    ("GET /p/eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "c2lnbmF0dXJl"),
    # Cards and mobile numbers glued to letters; cards split by `+`, `,`, `:`, or in two
    # groups of eight; a Korean mobile number with its country code and no `+`.
    ("GET /p/card4111111111111111", "4111111111111111"),
    ("GET /p/x5555555555554444", "5555555555554444"),
    ("request cardNo4111111111111111", "4111111111111111"),
    ("GET /p/tel01012345678", "01012345678"),
    ("GET /p/id01012345678x", "01012345678"),
    ("card 4111+1111+1111+1111", "4111+1111+1111+1111"),
    ("card 4111,1111,1111,1111", "4111,1111,1111,1111"),
    ("card 4111:1111:1111:1111", "4111:1111:1111:1111"),
    ("card 41111111 11111111", "41111111 11111111"),
    ("call 821012345678", "821012345678"),
    # Addresses whose domain has no dot, or an ideographic full stop for one.
    ("mail root@localhost", "root@localhost"),
    ("GET /p/alice@example", "alice@example"),
    ("mail alice@example\u3002com", "alice@example"),
    # `=` percent-encoded twice.
    ("GET /login?passwd%253Dhunter2", "hunter2"),
    # Separators of any kind: Unicode dashes, dots, underscores, slashes, odd spaces.
    ("rrn 900101.1234567", "900101.1234567"),
    ("rrn 900101_1234567", "900101_1234567"),
    ("rrn 900101/1234567", "900101/1234567"),
    ("rrn 900101\u22121234567", "900101\u22121234567"),
    ("rrn 900101\u00a01234567", "900101\u00a01234567"),
    ("rrn 900101\t1234567", "900101\t1234567"),
    ("rrn 900101  1234567", "900101  1234567"),
    ("rrn 900101\n1234567", "900101\n1234567"),
    ("call 010\t1234\t5678", "1234\t5678"),
    ("card 4111\t1111\t1111\t1111", "4111\t1111\t1111\t1111"),
    ("call 010\u20101234\u20105678", "1234\u20105678"),
    ("call 010\uff0d1234\uff0d5678", "1234\uff0d5678"),
    ("call 010/1234/5678", "1234/5678"),
    ("call 010_1234_5678", "1234_5678"),
    ("call 010\u30001234\u30005678", "1234\u30005678"),
    ("card 4111.1111.1111.1111", "4111.1111.1111.1111"),
    ("card 4111/1111/1111/1111", "4111/1111/1111/1111"),
    ("card 4111\u20131111\u20131111\u20131111", "4111\u20131111\u20131111\u20131111"),
    # Full-width and other Unicode decimal digits, and a full-width at sign.
    (f"rrn {in_digits('900101-1234567', FULL_WIDTH)}", in_digits("1234567", FULL_WIDTH)),
    (f"call {in_digits('010-1234-5678', ARABIC_INDIC)}", in_digits("5678", ARABIC_INDIC)),
    (f"card {in_digits('4111111111111111', FULL_WIDTH)}", in_digits("11111111", FULL_WIDTH)),
    (f"call {in_digits('010', DEVANAGARI)}\u2013{in_digits('1234', DEVANAGARI)}-5678", "5678"),
    ("mail alice\uff20example.com", "alice"),
    # Glued to a word by `_`.
    ("id_01012345678", "01012345678"),
    ("card_4111111111111111", "4111111111111111"),
    ("user_4111111111111111", "4111111111111111"),
    ("rrn_9001011234567", "9001011234567"),
    # Or to a word by a hyphen, spaced separators, a country code without its `+`.
    ("card-4111111111111111", "4111111111111111"),
    ("tel-010-1234-5678", "1234-5678"),
    ("call 010 - 1234 - 5678", "1234 - 5678"),
    ("call 82-10-1234-5678", "1234-5678"),
    # Bank account numbers, as Korean banks group them.
    ("account 110-123-456789", "110-123-456789"),
    ("account 1002-123-456789", "1002-123-456789"),
    ("account 123456-78-901234", "123456-78-901234"),
    ("account 123-456789-01234", "123-456789-01234"),
    ("account 3333-01-1234567", "3333-01-1234567"),
    ("account 301-1234-5678-91", "301-1234-5678-91"),
    ("account 301.1234.5678.91", "301.1234.5678.91"),
    ("account 110 123 456789", "110 123 456789"),
    ("acct_110-123-456789", "110-123-456789"),
    ("account 110\u2010123\u2010456789", "456789"),
    # Email addresses quoted, percent-encoded once or twice, with any allowed character.
    ('from "john doe"@example.com', "john doe"),
    ("GET /users?email=alice%40example.com", "alice"),
    ("GET /users?email=alice%2540example.com", "alice"),
    ("GET /users?email=%22john%20doe%22%40example.com", "john"),
    ("to alice%40example%2Ecom", "alice"),
    # Credentials under the usual names, and after any authorization scheme.
    ("passcode=hunter2", "hunter2"),
    ("login failed: pw=hunter2", "hunter2"),
    ("passphrase=correct-horse", "correct-horse"),
    ("pwd: hunter2", "hunter2"),
    ("apikey=k-123456", "k-123456"),
    ("X-API-Key: k-123456", "k-123456"),
    ("access_key=AKIA123", "AKIA123"),
    ("pin=4821", "4821"),
    ("session=s-8f2a1c", "s-8f2a1c"),
    ("sessionId: s-8f2a1c", "s-8f2a1c"),
    ("JSESSIONID=s-8f2a1c", "s-8f2a1c"),
    ("connect.sid=s-8f2a1c", "s-8f2a1c"),
    ("password%3Dhunter2", "hunter2"),
    ("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44=hunter2", "hunter2"),
    ("authorization: token abc123", "abc123"),
    ("Authorization: ApiKey abc123", "abc123"),
    ("Authorization: abc123", "abc123"),
    ('{"authorization": "token abc123"}', "abc123"),
    ("Proxy-Authorization: Digest username=bob, response=abc123", "abc123"),
    ("Cookie: theme=dark; sid=abc123", "abc123"),
    ("set-cookie: sid=abc123; Path=/", "abc123"),
    # Other separators between the groups of a number, and an address spaced at its `@`.
    ("tel 010*1234*5678", "1234*5678"),
    ("tel 010~1234~5678", "1234~5678"),
    ("tel 010|1234|5678", "1234|5678"),
    ("tel 010--1234--5678", "1234--5678"),
    ("\uc804\ud654 010\u31611234\u31615678", "1234\u31615678"),
    ("rrn 900101*1234567", "900101*1234567"),
    ("rrn 900101--1234567", "900101--1234567"),
    ("card 4111*1111*1111*1111", "1111*1111*1111"),
    ("card 4111~1111~1111~1111", "1111~1111~1111"),
    ("card 4111|1111|1111|1111", "1111|1111|1111"),
    ("card 4111--1111--1111--1111", "1111--1111--1111"),
    ("acct 110*123*456789", "456789"),
    ("mail kim @ example.com", "kim @ example.com"),
    ("mail kim@ example.com", "kim@ example.com"),
    # Three spaces, middle dots, numbers glued to a word with their separators, the `+` of
    # a country code left out, a registration number split by `:`, `,`, `+` or `=`.
    ("card 4111   1111   1111   1111", "1111   1111"),
    ("tel 010\u00b71234\u00b75678", "1234\u00b75678"),
    ("tel 010\u30fb1234\u30fb5678", "1234\u30fb5678"),
    ("tel010-1234-5678", "1234-5678"),
    ("tel 010-1234-5678x", "1234-5678"),
    ("tel 8210-1234-5678", "1234-5678"),
    ("card4111-1111-1111-1111", "1111-1111-1111"),
    ("rrn 900101:1234567", "1234567"),
    ("rrn 900101,1234567", "1234567"),
    ("rrn 900101+1234567", "1234567"),
    ("rrn 900101=1234567", "1234567"),
    # An address with an invisible character or tabs at its `@`.
    ("mail alice\u200b@example.com", "alice"),
    ("mail ann\t@\texample.com", "ann\t@"),
    # A scheme's value after `+` or `%20` (in a URL), Basic credentials without padding,
    # a token named `jwt`.
    ("GET /x?auth=Bearer%20abc123secret", "abc123secret"),
    ("GET /x?h=Bearer+abc123secret", "abc123secret"),
    ("Authorization Basic dXNlcjpwYXM", "dXNlcjpwYXM"),
    ("jwt=abc123secret", "abc123secret"),
]
# (text, masked): the whole value is masked, nothing of it is left beside the label,
# and the text around it is kept as it was.
MASKED_AS = [
    ("GET /people/o'brien@example.com", "GET /people/[email]"),
    ("GET /people/first&last@example.com", "GET /people/[email]"),
    ("GET /people/user_4111111111111111", "GET /people/user_[card]"),
    ("GET /people/acct_110-123-456789", "GET /people/acct_[account]"),
    ("{'email': 'jane@example.com'}", "{'email': '[email]'}"),
    ("<jane+news@example.com>", "<[email]>"),
    ("authorization: token abc123", "authorization: [redacted]"),
    ("to a!b#c$d*e^f|g~h{i}j@example.com", "to [email]"),
    # Korean, written without spaces, and full-width digits that are no number kept as
    # they were.
    (
        "\uae40 \u2014 010\u20101234\u20105678\ub85c, \uff15\uac1c",
        "\uae40 \u2014 [phone]\ub85c, \uff15\uac1c",
    ),
    ("\uce74\ub4dc4111111111111111", "\uce74\ub4dc[card]"),
    ("card 4111111111111111 12/25", "card [card] 12/25"),
    # Percent-encoded separators, as a path decoded once holds them, and passports.
    ("GET /x/4111%201111%201111%201111", "GET /x/[card]"),
    ("GET /x/4111%25201111%25201111%25201111", "GET /x/[card]"),
    ("GET /x/900101%2D1234567", "GET /x/[rrn]"),
    ("GET /x/010%2d1234%2D5678?a=1", "GET /x/[phone]?a=1"),
    ("tel 010%2B1234%2B5678", "tel [phone]"),
    ("GET /x/M12345678", "GET /x/[passport]"),
    ("passport M123A4567.", "passport [passport]."),
    # Any sign percent-encoded, at any depth, and characters that show nothing.
    ("GET /x?passport%3DM12345678", "GET /x?passport%3D[passport]"),
    ("card 4111%2C1111%2C1111%2C1111", "card [card]"),
    ("tel 010%25252D1234%25252D5678", "tel [phone]"),
    ("mail alice\ufe0f@example.com", "mail [email]"),
    ("card 4111\u034f1111\u034f1111\u034f1111", "card [card]"),
    # A mark on a letter of an address; dashes in UTF-8 percent-encoded; a full-width
    # `@` so; a passport number in lower case.
    ("mail al\u0307ice@ex.com", "mail [email]"),
    ("GET /x/010%E2%80%931234%E2%80%935678", "GET /x/[phone]"),
    ("GET /x/alice%EF%BC%A0example.com", "GET /x/[email]"),
    ("pp m12345678", "pp [passport]"),
]
# Text that looks a little like personal data and must come through unchanged.
MUST_KEEP = [
    "order 2024-0001-1234",
    "invoice 2024.0001.1234",
    "order 1234567812345678",  # 16 digits, not Luhn-valid: not a card
    "on 2024-01-31 at 12:30:45.123",
    "version 1.2.3-beta.4",
    "from 192.168.10.254 port 5432",
    "item 123e4567-e89b-12d3-a456-426614174000",
    "user 00000000-0000-0000-0000-000000000000",
    "HTTP basic authentication is off",
    "basic plan renewed",
    # Letters that match the base64 alphabet only case-insensitively (long s, Kelvin
    # sign): no credentials, and no error that would lose the log line.
    "Basic \u017f\u017f\u017f\u212a",
    "token refresh succeeded for 3 sessions",
    "max_tokens=2000 refresh_token_days=7",
    "price 1,234,567 KRW",
    "20 items in 123 ms",
    "footprint=12",
    "pwm=12 upward=3",
    "rows\t20\nitems\t123",
    # What a log line holds besides: ids, times, durations, addresses, counts, prices.
    "user 12345678-1234-5678-1234-567812345678",
    "request 3f2a9b1c0d4e5f67890123456789abcd",
    "at 2024-01-31T12:30:45.123456+00:00",
    "at 2024/01/31 12:30:45",
    "at 1712345678901 ms since the epoch",
    "took 0.30000000000000004 s",
    "duration_ms=1234.5678901234",
    "from 192.168.100.254:54321",
    "HTTP/1.1 404",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0",
    "price 12.50 USD, 3 left",
    "GET /items?limit=20&offset=40",
    "sessions: 3",
    "token_count: 12",
    "bypass=on",
    "mapping=2",
    "author: kim",
    "reply to @example.com",
    "\uc0ac\uc6a9\uc790 3\uba85 \ub85c\uadf8\uc778",
    "stock \uff15, season 2024\u20132025",
    # Amounts in thousands, however long; a timestamp and a count; hex ids.
    "total 1,234,567,890,123,456 KRW",
    "at 1712345678901 ms, 12 rows",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736",
    "id 0af7651916cd43dd8448eb211c80319c",
    # The other separators in what is no number of a person; a mention, and Python's `@`.
    "3*1024*1024 bytes",
    "rows 10|20|30",
    "\u314b\u314b\u3161\u3161 2024",
    "reply to @team",
    "y = a @ b",
    "rows 1,234 and 5,678",
    "at 12:30:45+09:00",
    "version 2.0.1+build.20240131",
    # Zero-padded counters; times and lists of numbers that pass a card's checksum or
    # look like an account's groups.
    "invoice 0000123456, seq=000000001",
    "at 2026-11-30_23-47-21",
    "took 1 2 3 4 5 6 7 8 9 10 11 12 13 ms",
    "at 2026.11.30.101500",
    # Percent-encoded text that is no number of a person; a model number too short or
    # long for a passport.
    "GET /search?q=2024%20sales%20report&page=12",
    "GET /files/a%20b%20c.txt",
    "model M1234567 and M123456789",
]


@pytest.mark.parametrize(("text", "personal"), MUST_MASK)
def test_personal_data_forms_are_masked(text: str, personal: str) -> None:
    masked = mask_text(text)
    assert personal not in masked, masked
    assert masked != text


@pytest.mark.parametrize(("text", "masked"), MASKED_AS)
def test_personal_data_is_masked_whole_and_alone(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", MUST_KEEP)
def test_text_that_only_looks_personal_is_kept(text: str) -> None:
    assert mask_text(text) == text


# As long as masking reads (longer is cut first). On these a pattern tried from each
# character took time quadratic in the length: a 16 kB path of `a.` cost 3 s of CPU to
# log. Holding nothing personal, they come through unchanged.
HALF = MAX_MASKED // 2
LONG_SHAPES = [
    "a." * HALF,
    "a'" * (HALF - 1) + "@",
    "a." * (HALF - 1) + "@",
    "1 " * (HALF - 1) + "@",
    "1-" * (HALF - 1) + "@",
    ".@" * HALF,
    "%25" * (MAX_MASKED // 3) + "@",
    "-eyJ" * (MAX_MASKED // 4),
    "_eyJ" * (MAX_MASKED // 4),
    "Did you mean " * (MAX_MASKED // 13),
]


@pytest.mark.timeout(10)
def test_masking_time_grows_with_the_length_not_its_square() -> None:
    for shape in LONG_SHAPES:
        assert len(shape) <= MAX_MASKED
        assert mask_text(shape) == shape
    cut = mask_text("x" * (MAX_MASKED + 10))
    assert cut == "x" * MAX_MASKED + " [10 characters cut]"


def test_values_are_masked_cut_near_what_the_line_keeps_and_whole_where_cut() -> None:
    """Masking reads no more than a little over what a line keeps of a value, and a card
    number that lies where the value is cut is masked, not cut in two and kept in part."""
    read: list[int] = []

    def reading(logger: object, name: str, event: dict[str, object]) -> object:
        read.extend(len(value) for value in event.values() if isinstance(value, str))
        return mask_personal_data(logger, name, event)

    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream, redact=reading)
    card = " 4111 1111 1111 1111 "
    try:
        for shift in range(-len(card), 2):
            structlog.get_logger("test").info(
                "x", detail="x" * (MAX_VALUE_CHARS + shift) + card + "y" * 100_000
            )
        # Addresses that masking shortens, then a card where the value was cut before it:
        # the card moved into what the line keeps, split and unmasked.
        shortened = (" " + "a" * 40 + "@x.io") * 20
        first_cut = MAX_VALUE_CHARS + REDACT_MARGIN
        padding = "b" * (first_cut - len(shortened) - 10)
        structlog.get_logger("test").info("y", detail=shortened + padding + card + "z" * 100)
    finally:
        configure_logging(level="INFO", json=True)
    *cut_lines, moved = stream.getvalue().splitlines()
    assert "1111" not in json.loads(moved)["detail"]
    stream = io.StringIO("\n".join(cut_lines))
    note = "\n... [99999 characters cut before masking] ...\n"
    assert max(read) <= MAX_VALUE_CHARS + REDACT_MARGIN + len(note)
    lines = [json.loads(line)["detail"] for line in stream.getvalue().splitlines()]
    assert len(lines) == len(card) + 2
    for shift, detail in zip(range(-len(card), 2), lines, strict=True):
        assert "1111" not in detail, detail[-200:]
        # The whole value, masked, is the count: what was cut before masking too.
        head, _, note = detail.partition("\n... [")
        assert note.endswith(" characters cut] ...\n"), detail[-100:]
        masked = MAX_VALUE_CHARS + shift + len(" [card] ") + 100_000
        assert int(note.split(" ")[0]) == masked - len(head)
        assert MAX_VALUE_CHARS - REDACT_MARGIN <= len(head) <= MAX_VALUE_CHARS


async def test_personal_data_a_client_writes_in_its_headers_is_stored_masked(
    client: AsyncClient, services: Services, account: Account
) -> None:
    """The request id and the user agent are the client's to write, and went whole into
    the trail, the outbox and the broker's messages: a resident registration number as
    the id; an address, a phone number and a token in the agent."""
    agent = "Mozilla/5.0 carol@example.org 010-1234-5678 Bearer eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.s"
    sent = {"X-Request-ID": "900101-1234567", "User-Agent": agent}
    response = await api.create_item(client, account, unique("headers"), headers=sent)
    assert api.succeeded(response)
    request_id = response.headers["x-request-id"]
    assert request_id != sent["X-Request-ID"]
    item_id = api.stored_id(response)
    recent = await services.audit.recent(limit=100)
    (entry,) = [record.entry for record in recent if record.entry.resource_id == item_id]
    assert (entry.request_id, entry.user_agent) == (request_id, mask_text(agent))
    assert entry.user_agent
    for personal in ("carol@", "1234-5678", "eyJ4IjoxfQ"):
        assert personal not in entry.user_agent
    events = await services.database.outbox.about(str(account.user.id), [item_id])
    (created,) = [event for event in events if event.event_type == "item.created"]
    assert json.loads(created.payload)["correlation_id"] == request_id
    # Sent as UTF-8 (it was read as Latin-1, which no pattern matched), and a number
    # where the agent is cut (it was cut first, and kept in part).
    for agent, personal in (
        (
            "App \uff10\uff11\uff10-\uff11\uff12\uff13\uff14-\uff15\uff16\uff17\uff18",
            "\uff15\uff16",
        ),
        ("y" * 241 + " 5555555555554444", "55555555"),
        ("y" * 248 + " 010-1234-5678", "010-1234"),
        # An address that masking shortens, then a number where the agent is read to.
        ("a" * 995 + "@x.io card 4111 1111 1111 1111", "4111"),
    ):
        sent = {"User-Agent": agent.encode()}  # type: ignore[dict-item]
        response = await api.create_item(client, account, unique("agent"), headers=sent)
        item_id = api.stored_id(response)
        recent = await services.audit.recent(limit=100)
        (entry,) = [record.entry for record in recent if record.entry.resource_id == item_id]
        kept = entry.user_agent or ""
        assert len(kept) <= 256
        assert personal not in kept, kept
    # A plain id, as the client gave it, is kept.
    plain = await api.create_item(
        client, account, unique("headers"), headers={"X-Request-ID": "abc-123"}
    )
    assert plain.headers["x-request-id"] == "abc-123"


async def test_a_client_address_that_is_none_is_not_stored(
    app: FastAPI, services: Services, account: Account
) -> None:
    """Behind a trusted proxy uvicorn takes X-Forwarded-For as the client as written: a
    registration number was stored as the address, and 60 characters were a 500 (the
    column holds 45)."""
    for written in ("900101-1234567", "x" * 60, "::1%john@example.com", "2001:DB8:0:0::1"):
        transport = ASGITransport(app=app, client=(written, 4321))
        async with AsyncClient(transport=transport, base_url="http://t") as proxied:
            response = await api.create_item(proxied, account, unique("proxied"))
        assert api.succeeded(response), response.text
        recent = await services.audit.recent(limit=100)
        item_id = api.stored_id(response)
        (entry,) = [record.entry for record in recent if record.entry.resource_id == item_id]
        assert entry.client_ip == ("2001:db8::1" if written.startswith("2001") else None)


async def test_personal_data_in_a_requested_path_is_masked_whole_in_the_access_log(
    client: AsyncClient,
) -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream, redact=mask_personal_data)
    try:
        # Paths no route serves, in both APIs: the access log writes them all the same.
        for name in ("o'brien@example.com", "first&last@example.com", "user_4111111111111111"):
            await client.get(f"/people/{name}")
        await client.get("/people/acct_110-123-456789")
    finally:
        configure_logging(level="INFO", json=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    paths = [line["path"] for line in lines if line["event"] == "request"]
    assert paths == [
        "/people/[email]",
        "/people/[email]",
        "/people/user_[card]",
        "/people/acct_[account]",
    ]


@pytest.mark.parametrize(
    "field",
    [
        "password",
        "pwd",
        "credentials",
        "otp",
        "otp_code",
        "api_key",
        "apikey",
        "x-api-key",
        "passcode",
        "pin",
        "session",
        "session_id",
        "sessionId",
        "cookie",
        "set-cookie",
        "authorization",
        "proxy-authorization",
        "private_key",
        "access_key",
    ],
)
def test_fields_named_as_secrets_are_redacted(field: str) -> None:
    event = mask_personal_data(None, "info", {"event": "x", field: "493021"})
    assert event[field] == "[redacted]"


@pytest.mark.parametrize(
    "field", ["footprint", "topic", "compass", "sessions", "author", "spinner"]
)
def test_fields_that_only_contain_a_secret_word_are_kept(field: str) -> None:
    event = mask_personal_data(None, "info", {"event": "x", field: "plain"})
    assert event[field] == "plain"


class ItemCreatedWithName(ItemEvent):
    """item.created as this service wrote it before its events carried ids only: such
    events can still wait in the outbox when the service is upgraded."""

    event_type: ClassVar[str] = "item.created"

    owner_id: UUID
    name: str


async def test_erasure_leaves_no_personal_data_in_the_outbox(
    services: Services, account: Account
) -> None:
    user_id = account.user.id
    published = await create_items(services, account, 2)

    async def held() -> list[HeldEvent]:
        return await services.database.outbox.about(str(user_id), published)

    async def all_sent() -> bool:
        events = await held()
        return bool(events) and all(event.sent for event in events)

    await eventually(all_sent)
    await services.relay.stop()
    try:
        # Waiting in the outbox at erasure time: an event in the old shape, with a name.
        waiting = unique("Kim Minji's wedding list")
        with acting_as(account):
            async with services.database.unit_of_work() as uow:
                uow.emit(
                    ItemCreatedWithName(item_id=UUID(published[0]), owner_id=user_id, name=waiting)
                )
            exported = await audit_service.export_personal_data(
                database=services.database, audit=services.audit, user_id=user_id
            )
        # The export lists what the outbox still holds about the person.
        assert {event.event_type for event in exported.outbox_events} >= {
            "user.registered",
            "item.created",
        }
        assert any(waiting in event.payload for event in exported.outbox_events)

        with acting_as(account):
            await audit_service.erase_account(
                database=services.database,
                passwords=services.passwords,
                tokens=services.tokens,
                cache=services.cache,
                user_id=user_id,
                data=Erasure(password=account.password),
            )
        left = await held()
        # Published events about the person are gone; what still waits is delivered,
        # without the personal field, and consumers still learn of the erasure.
        assert all(not event.sent for event in left)
        assert not any(waiting in event.payload or account.email in event.payload for event in left)
        kinds = [event.event_type for event in left]
        assert kinds.count("item.created") == 1
        assert "user.erased" in kinds
        assert kinds.count("item.deleted") == 2
    finally:
        services.relay.start()
    await eventually(all_sent)
