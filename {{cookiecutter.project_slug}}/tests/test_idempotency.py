"""Retry-safe creates: an idempotency key makes a retry get the first answer, not a
second item (app/core/idempotency.py), through the API against the real Redis."""

import asyncio
import uuid

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.idempotency import Idempotency, scope
from app.items import service as item_service
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery
from app.services import Services
from app.settings import IdempotencySettings, Settings
from tests.api import (
    BAD_KEY_CODE,
    create_item,
    create_with_key,
    refusal,
    replayed,
    succeeded,
)
from tests.conftest import (
    Account,
    FailingDatabase,
    eventually,
    serving,
    unique,
    unreachable_dependency,
)


def new_key() -> str:
    return str(uuid.uuid4())


async def items_of(services: Services, account: Account) -> list[ItemPublic]:
    page = await item_service.list_items(
        database=services.database, query=ItemQuery(limit=100), principal=account.principal
    )
    return page.items


async def created_events(services: Services, item: ItemPublic) -> int:
    held = await services.database.outbox.about(str(item.id), [str(item.id)])
    return sum(event.event_type == "item.created" for event in held)


def redis_key(services: Services, account: Account, key: str) -> str:
    return services.idempotency.redis_key(scope(account.user.id, address="unused"), key)


async def test_a_retry_gets_the_first_answer_and_nothing_is_written_twice(
    client: AsyncClient, services: Services, account: Account
) -> None:
    key, name = new_key(), unique("retried")
    first = await create_with_key(client, account, key, name=name, price_cents=250)
    assert succeeded(first), first.text
    assert not replayed(first)
    # Sent again, and again spelt differently: the same request, the same answer.
    again = await create_with_key(client, account, key, name=name, price_cents=250)
    respelt = await create_with_key(client, account, key, price_cents=250, name=name)
    for retry in (again, respelt):
        assert (retry.status_code, retry.json()) == (first.status_code, first.json())
        assert replayed(retry)
    [item] = await items_of(services, account)
    assert item.name == name
    assert await created_events(services, item) == 1


async def test_the_same_key_with_another_request_is_refused(
    client: AsyncClient, services: Services, account: Account
) -> None:
    key, name = new_key(), unique("first")
    first = await create_with_key(client, account, key, name=name)
    assert succeeded(first), first.text
    other = await create_with_key(client, account, key, name=name, price_cents=1)
    assert refusal(other) == (422, "idempotency_key_reused")
    # The key still answers the request it was first used for.
    assert replayed(await create_with_key(client, account, key, name=name))
    assert len(await items_of(services, account)) == 1


async def test_concurrent_requests_with_one_key_write_once(
    client: AsyncClient, services: Services, account: Account
) -> None:
    key, name = new_key(), unique("raced")
    answers = await asyncio.gather(
        *(create_with_key(client, account, key, name=name) for _ in range(4))
    )
    [first] = [answer for answer in answers if succeeded(answer) and not replayed(answer)]
    for answer in answers:
        if answer is first:
            continue
        if succeeded(answer):
            assert replayed(answer)
            assert answer.json() == first.json()
        else:
            # Still in flight when this one came: a conflict, never the item's own 409.
            assert refusal(answer) == (409, "idempotency_key_in_flight")
    [item] = await items_of(services, account)
    assert await created_events(services, item) == 1


def test_keys_are_kept_a_day_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IdempotencySettings().ttl_seconds == 24 * 3600
    monkeypatch.setenv("IDEMPOTENCY_TTL_SECONDS", "90")
    assert Settings().idempotency.ttl_seconds == 90


async def test_a_key_is_forgotten_when_it_expires(
    app: FastAPI, client: AsyncClient, services: Services, account: Account
) -> None:
    short = Idempotency(services.cache, IdempotencySettings(ttl_seconds=5))
    key, name = new_key(), unique("expiring")
    async with serving(app, idempotency=short):
        first = await create_with_key(client, account, key, name=name)
        assert succeeded(first), first.text
        redis = services.cache.redis
        # Kept as long as configured, counted from the answer...
        assert 0 < await redis.pttl(redis_key(services, account, key)) <= 5000
        # ...and then gone: Redis expires it (made due at once here, not waited for).
        await redis.pexpire(redis_key(services, account, key), 1)

        async def expired() -> bool:
            return not await redis.exists(redis_key(services, account, key))

        await eventually(expired)
        # The retry runs as a new request: the item exists, so it is refused as a duplicate.
        late = await create_with_key(client, account, key, name=name)
    assert not replayed(late)
    status, code = refusal(late)
    assert status == 409
    assert code != "idempotency_key_in_flight"
    assert len(await items_of(services, account)) == 1


@pytest.mark.parametrize(
    "key",
    ["", "short", "x" * 256, "with space-1234", "colon:key-1234", '"quoted-key-1234"'],
    ids=["empty", "short", "long", "space", "colon", "quoted"],
)
async def test_a_malformed_key_is_refused(
    client: AsyncClient, services: Services, account: Account, key: str
) -> None:
    answer = await create_with_key(client, account, key, name=unique("bad-key"))
    assert refusal(answer) == (422, BAD_KEY_CODE)
    assert await items_of(services, account) == []


async def test_keys_are_their_callers_own(
    client: AsyncClient, services: Services, account: Account, other_account: Account
) -> None:
    key, name = new_key(), unique("shared-key")
    mine = await create_with_key(client, account, key, name=name)
    theirs = await create_with_key(client, other_account, key, name=name)
    assert succeeded(mine), mine.text
    assert succeeded(theirs), theirs.text
    assert not replayed(theirs)
    assert theirs.json() != mine.json()
    [item] = await items_of(services, other_account)
    assert item.owner_id == other_account.user.id
    # Anonymous callers' keys are their address's.
    calls: list[str] = []

    async def create(address: str) -> ItemPublic:
        async def run() -> ItemPublic:
            calls.append(address)
            return item

        outcome = await services.idempotency.run(
            key=key,
            caller=scope(None, address=address),
            operation="test",
            request=ItemCreate(name=name),
            model=ItemPublic,
            status=201,
            create=run,
        )
        return outcome.value

    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.1"):
        assert await create(address) == item
    assert calls == ["192.0.2.1", "192.0.2.2"]
    # An address is the proxy's word, of any length: its keys are all of one size.
    assert len(scope(None, address="x" * 10_000)) == len(scope(None, address="192.0.2.1"))


async def test_a_failed_request_frees_its_key(
    app: FastAPI, client: AsyncClient, services: Services, account: Account
) -> None:
    key, name = new_key(), unique("failed")
    # A server error: nothing was written, so the retry runs and creates.
    async with serving(app, database=FailingDatabase()):
        failed = await create_with_key(client, account, key, name=name)
    assert not succeeded(failed)
    created = await create_with_key(client, account, key, name=name)
    assert succeeded(created), created.text
    assert not replayed(created)
    # A refusal (4xx) keeps nothing either: the duplicate's 409 is not replayed once the
    # cause is gone.
    other = new_key()
    taken = await create_with_key(client, account, other, name=name)
    assert refusal(taken)[0] == 409
    [item] = await items_of(services, account)
    await item_service.delete_item(database=services.database, cache=services.cache, item=item)
    retried = await create_with_key(client, account, other, name=name)
    assert succeeded(retried), retried.text
    assert not replayed(retried)


async def test_without_redis_a_key_cannot_be_honoured(
    app: FastAPI, client: AsyncClient, services: Services, settings: Settings, account: Account
) -> None:
    """503 rather than a create that no retry could be matched with; without a key the
    create goes on (REDIS_FAIL_OPEN, on in the tests)."""
    async with unreachable_dependency(app, settings, "redis"):
        refused = await create_with_key(client, account, new_key(), name=unique("refused"))
        keyless = await create_item(client, account, unique("keyless"))
    assert refusal(refused) == (503, "service_unavailable")
    assert succeeded(keyless), keyless.text
    assert len(await items_of(services, account)) == 1
