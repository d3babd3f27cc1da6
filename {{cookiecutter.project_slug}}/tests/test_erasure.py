"""Erasure leaves nothing of the person behind, whatever ran alongside it, and the export
holds everything about them and nothing about anyone else."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.audit import service as audit_service
from app.audit.service import Erasure
from app.core.errors import UnauthorizedError
from app.core.pagination import PAGE_MAX
from app.items.schemas import ItemQuery
from app.services import Services
from tests import actions, api
from tests.conftest import PASSWORD, Account, new_account, new_item, unique, unique_address

PHONE = "call me at 010-1234-5678"


async def owned_item_ids(services: Services, owner: UUID) -> set[str]:
    async with services.database.unit_of_work(read_only=True) as uow:
        items = await uow.items.find(ItemQuery(owner_id=owner), after=None, limit=PAGE_MAX)
    return {str(item.id) for item in items}


async def test_items_created_while_the_account_is_erased_do_not_outlive_the_erasure(
    services: Services, client: AsyncClient, account: Account
) -> None:
    token = account.tokens.access_token
    under_way, erased = asyncio.Event(), asyncio.Event()
    # Each create: (started after the erasure returned, the item id if it succeeded).
    creates: list[tuple[bool, str | None]] = []

    async def keep_creating() -> None:
        refused_after_erasure = 0
        while refused_after_erasure < 5:
            started_after = erased.is_set()
            request_id = actions.new_request_id()
            created = await actions.create_item(client, request_id, token, unique("race"))
            creates.append((started_after, created))
            refused_after_erasure += started_after
            if sum(created is not None for _, created in creates) >= 10:
                under_way.set()

    loops = asyncio.gather(*(keep_creating() for _ in range(4)))
    try:
        await asyncio.wait_for(under_way.wait(), timeout=30)
        answered = await actions.erase_account(client, actions.new_request_id(), token, PASSWORD)
        assert answered
        erased.set()
{%- if cookiecutter.database == "postgres" %}
        # The creates that raced the erasure committed before it (and were erased with
        # the rest) or gave up: none is left, even with requests still in flight.
        assert await owned_item_ids(services, account.user.id) == set()
{%- endif %}
    finally:
        erased.set()
        await loops

    succeeded = {created for _, created in creates if created is not None}
    assert len(succeeded) >= 10
    # Nothing survives; every create that answered a success had its item erased.
    assert await owned_item_ids(services, account.user.id) == set()
    async with services.database.unit_of_work(read_only=True) as uow:
        for item_id in succeeded:
            assert await uow.items.get(UUID(item_id)) is None
    # No create sent after the erasure answered succeeds.
    assert [created for after, created in creates if after and created is not None] == []


async def test_a_create_racing_the_erasure_in_the_service_never_leaves_an_item(
    services: Services, account: Account
) -> None:
    """The same race without the API's session check: the storage alone must hold it."""

    async def create() -> str | None:
        try:
            return str((await new_item(services, account, description=PHONE)).id)
        except UnauthorizedError:  # the account is gone
            return None

    early = [asyncio.create_task(create()) for _ in range(20)]
    await asyncio.sleep(0)
    erasure = asyncio.create_task(
        audit_service.erase_account(
            database=services.database,
            passwords=services.passwords,
            tokens=services.tokens,
            cache=services.cache,
            user_id=account.user.id,
            data=Erasure(password=PASSWORD),
        )
    )
    late = [asyncio.create_task(create()) for _ in range(20)]
    await erasure
    after = await asyncio.gather(*[create() for _ in range(5)])
    await asyncio.gather(*early, *late)
    assert await owned_item_ids(services, account.user.id) == set()
    assert after == [None] * 5

{%- if cookiecutter.database == "postgres" %}


async def test_a_create_that_waited_for_the_erasure_finds_the_account_erased(
    services: Services, account: Account
) -> None:
    """The race above, made to happen: the create's insert comes while the erasure holds
    the account's row, and must see the row as the erasure leaves it. (A create that
    checked the owner only in its statement's snapshot inserted an item of an erased
    account.)"""
    import pytest
    from sqlalchemy import text

    from app.storage.postgres.database import PostgresDatabase
    from app.users.erased import erased_email

    database = services.database
    assert isinstance(database, PostgresDatabase)
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    async with database.unit_of_work() as uow:
        user_id = account.user.id
        await uow.users.anonymise(user_id, email=erased_email(user_id), password_hash="x")
        create = asyncio.create_task(new_item(services, account))
        async with database.autocommit.connect() as connection:
            for _ in range(200):
                if await connection.scalar(waiting):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the create never waited for the erasure's lock")
    with pytest.raises(UnauthorizedError):
        await create
    assert await owned_item_ids(services, account.user.id) == set()
{%- endif %}


async def redis_keys_naming(services: Services, *names: str) -> list[str]:
    keys = [key async for key in services.cache.redis.scan_iter(match=services.cache.key("*"))]
    return [key for key in keys if any(name in key for name in names)]


async def test_erasure_leaves_no_idempotency_record_or_other_redis_key_of_the_person(
    services: Services, client: AsyncClient, account: Account
) -> None:
    fields = {"name": unique("kept"), "description": f"{PHONE}, RRN 900101-1234567"}
    created = await api.create_with_key(client, account, unique("erin-key"), **fields)
    assert api.succeeded(created), created.text
    user_id = str(account.user.id)
    assert await redis_keys_naming(services, user_id)

    assert await actions.erase_account(
        client, actions.new_request_id(), account.tokens.access_token, PASSWORD
    )

    assert await redis_keys_naming(services, user_id, account.email) == []


@asynccontextmanager
async def calling_from(app: FastAPI, address: str) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, client=(address, 4321))
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def exported(answer: Any) -> dict[str, Any]:
    """The export as either API style gives it (one wraps it in its field)."""
    assert answer
    data: dict[str, Any] = answer.get("myPersonalData", answer)
    return data


async def test_the_export_holds_what_others_did_to_the_persons_items(
    client: AsyncClient, account: Account, admin_account: Account
) -> None:
    person = account.tokens.access_token
    changed, removed = [
        await actions.create_item(client, actions.new_request_id(), person, unique("item"))
        for _ in range(2)
    ]
    assert changed
    assert removed
    admin = admin_account.tokens.access_token
    assert await actions.update_item(
        client, actions.new_request_id(), admin, changed, unique("renamed")
    )
    # Deleted since: still the person's, and so is what was done to it.
    assert await actions.delete_item(client, actions.new_request_id(), admin, removed)

    data = exported(await actions.export_data(client, actions.new_request_id(), person))

    about = {(record["resource_id"], record["action"]): record for record in data["audit_trail"]}
    for key in ((changed, "item.update"), (removed, "item.delete")):
        record = about[key]
        # What was done and when; nothing of the admin who did it.
        assert record["occurred_at"]
        assert (record["actor"], record["client_ip"], record["user_agent"]) == (None,) * 3
        assert record["request_id"] is None
    assert str(admin_account.user.id) not in str(data)


async def test_the_export_withholds_other_peoples_data_in_records_about_the_person(
    app: FastAPI, services: Services, client: AsyncClient, account: Account, admin_account: Account
) -> None:
    stranger_address, admin_address = unique_address(), unique_address()
    # Their requests' ids: an event of the outbox named the anonymous caller's.
    stranger_request, admin_request = actions.new_request_id(), actions.new_request_id()
    async with calling_from(app, stranger_address) as stranger:
        assert not await actions.login(
            stranger, stranger_request, account.email, actions.WRONG_PASSWORD
        )
    async with calling_from(app, admin_address) as admin_client:
        assert await actions.set_role(
            admin_client,
            admin_request,
            admin_account.tokens.access_token,
            str(account.user.id),
            "admin",
        )
    # The role change ended the person's sessions: a new one to ask for the export.
    person = await new_account_session(services, account)

    data = exported(await actions.export_data(client, actions.new_request_id(), person))

    trail = data["audit_trail"]
    actions_seen = {(record["action"], record["outcome"]) for record in trail}
    assert {("session.login", "failed"), ("user.role_change", "success")} <= actions_seen
    for record in trail:
        if record["actor"] != str(account.user.id):
            assert record["actor"] is None
            assert (record["client_ip"], record["user_agent"], record["request_id"]) == (None,) * 3
    assert {event["event_type"] for event in data["outbox_events"]} >= {"session.login_failed"}
    text = str(data)
    for theirs in (str(admin_account.user.id), admin_address, stranger_address):
        assert theirs not in text
    for theirs in (admin_request, stranger_request):
        assert theirs not in text


async def new_account_session(services: Services, account: Account) -> str:
    async with services.database.unit_of_work(read_only=True) as uow:
        user = await uow.users.get(account.user.id)
    assert user is not None
    return (await services.tokens.open_session(user)).access_token


async def test_the_export_keeps_the_persons_own_records_whole(
    app: FastAPI, services: Services
) -> None:
    person = await new_account(services)
    address = unique_address()
    async with calling_from(app, address) as own:
        item_id = await actions.create_item(
            own, actions.new_request_id(), person.tokens.access_token, unique("mine")
        )
        data = exported(
            await actions.export_data(own, actions.new_request_id(), person.tokens.access_token)
        )
    created = next(
        record
        for record in data["audit_trail"]
        if (record["action"], record["resource_id"]) == ("item.create", item_id)
    )
    assert created["actor"] == str(person.user.id)
    assert created["client_ip"] == address
    assert created["request_id"]


async def test_no_registration_can_take_an_address_in_the_erased_domain(
    client: AsyncClient,
) -> None:
    """What marks an account erased (app/users/erased.py) is out of anyone's reach."""
    for address in (f"erased-{unique('x')}@erased.invalid", "Someone@Erased.Invalid"):
        assert not await actions.register(client, actions.new_request_id(), address, PASSWORD)
