"""The audit trail records audited actions, sealed in a verifiable chain."""

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from uuid import uuid4

import pytest
import structlog

from app.audit.masking import mask_personal_data
from app.audit.records import GENESIS, AuditEntry, SealedEntry, seal, verify_chain
from app.auth import service as auth
from app.core.context import RequestContext, set_current_request
from app.core.errors import UnauthorizedError
from app.core.logging import configure_logging
from app.items import service
from app.items.schemas import ItemCreate
from app.services import Services
from app.settings import Settings
from app.users import service as user_service
from tests.conftest import PASSWORD, Account, unique
from tests.test_auth import login


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

    report = await services.audit.verify()
    assert report.intact
    assert report.checked >= 1


def _chain(key: bytes, count: int) -> list[SealedEntry]:
    records, previous = [], GENESIS
    for sequence in range(1, count + 1):
        entry = AuditEntry(action="item.create", resource_type="item", resource_id=str(sequence))
        current = seal(key, previous, entry)
        records.append(SealedEntry(sequence, entry, previous, current))
        previous = current
    return records


def test_verify_finds_the_first_edited_record() -> None:
    key = b"k" * 32
    records = _chain(key, 5)
    assert verify_chain(key, records).intact

    edited = records[2].entry.model_copy(update={"actor": "mallory"})
    records[2] = SealedEntry(3, edited, records[2].previous, records[2].seal)
    report = verify_chain(key, records)
    assert (report.intact, report.first_broken, report.checked) == (False, 3, 2)


def test_verify_finds_a_deleted_record_and_a_wrong_key() -> None:
    key = b"k" * 32
    records = _chain(key, 4)
    assert verify_chain(key, [*records[:1], *records[2:]]).first_broken == 3
    assert verify_chain(b"x" * 32, records).first_broken == 1


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


async def test_admin_reading_users_is_audited(services: Services, admin_account: Account) -> None:
    set_current_request(RequestContext(request_id=uuid4().hex, actor_id=str(admin_account.user.id)))
    try:
        await user_service.list_users(database=services.database, after=None, limit=5)
    finally:
        set_current_request(None)
    assert ("user.list", "success") in await actions_of(services, str(admin_account.user.id))


def run_verify(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDIT_SECRET_KEY": settings.audit.secret_key.get_secret_value()}
{%- if cookiecutter.database == "postgres" %}
    env["DATABASE_URL"] = settings.database.url
{%- else %}
    env["MONGODB_URL"] = settings.mongodb.url
{%- endif %}
    return subprocess.run(
        [sys.executable, "-m", "app.audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_verify_command_catches_a_record_edited_in_the_database(
    services: Services, settings: Settings, account: Account
) -> None:
    await service.create_item(
        database=services.database, owner=account.principal, data=ItemCreate(name=unique("v"))
    )
    intact = await asyncio.to_thread(run_verify, settings)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "audit trail intact" in intact.stdout

    (last,) = await services.audit.recent(limit=1)
{%- if cookiecutter.database == "postgres" %}
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from app.storage.postgres.database import PostgresDatabase

    assert isinstance(services.database, PostgresDatabase)
    engine = services.database.engine
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
        broken = await asyncio.to_thread(run_verify, settings)
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
        broken = await asyncio.to_thread(run_verify, settings)
    finally:
        await collection.update_one(
            {"sequence": last.sequence}, {"$set": {"actor": last.entry.actor}}
        )
{%- endif %}
    assert broken.returncode == 1
    assert f"broken at record {last.sequence}" in broken.stdout
    assert (await services.audit.verify()).intact
