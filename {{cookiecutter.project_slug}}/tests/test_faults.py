"""Dependencies that go away mid-traffic: clean 503s, recovery without a restart, and
no acknowledged write lost. Each runs against the real server behind a FaultProxy."""

import asyncio
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.items.schemas import ItemQuery
from app.items.service import list_items
from app.services import Services
from app.settings import Settings
from tests.api import create_item, item_id, list_page, read_item, succeeded, unavailable
from tests.conftest import Account, behind_proxy, eventually, unique
{% if cookiecutter.database == "mongodb" %}
# Without an answer in this time the database counts as down (the default is 5 s).
QUICK: dict[str, Any] = {"timeout_ms": 500}
{%- else %}
QUICK: dict[str, Any] = {}
{%- endif %}


async def ready(client: AsyncClient) -> bool:
    return (await client.get("/health/ready")).status_code == 200


async def owned_item_ids(services: Services, account: Account) -> set[str]:
    query = ItemQuery(owner_id=account.user.id, limit=100)
    page = await list_items(database=services.database, query=query, principal=account.principal)
    return {str(item.id) for item in page.items}


async def test_database_outage_answers_503_and_recovers_without_losing_writes(
    app: FastAPI, client: AsyncClient, settings: Settings, services: Services, account: Account
) -> None:
    acknowledged: list[str] = []
    answers: list[Response] = []
    stop = asyncio.Event()

    async def keep_writing() -> None:
        while not stop.is_set():
            response = await create_item(client, account, unique("traffic"))
            answers.append(response)
            if succeeded(response):
                acknowledged.append(item_id(response))
            await asyncio.sleep(0.01)

    async with behind_proxy(app, settings, "database", **QUICK) as proxy:
        traffic = asyncio.create_task(keep_writing())
        await eventually(lambda: asyncio.sleep(0, result=len(acknowledged) >= 5))
        await proxy.cut()

        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["checks"]["database"] == "unavailable"
        assert unavailable(await create_item(client, account, unique("during")))
        assert unavailable(await list_page(client, account))
        await eventually(lambda: asyncio.sleep(0, result=unavailable(answers[-1])))

        await proxy.restore()
        await eventually(lambda: ready(client))
        settled = len(acknowledged)
        await eventually(lambda: asyncio.sleep(0, result=len(acknowledged) >= settled + 5))
        stop.set()
        await traffic

    # Every answer was a success or a clean 503; every acknowledged write is there.
    assert all(succeeded(answer) or unavailable(answer) for answer in answers)
    assert any(unavailable(answer) for answer in answers)
    assert set(acknowledged) <= await owned_item_ids(services, account)


async def test_redis_outage_bypasses_the_cache_and_fails_open_by_default(
    app: FastAPI, client: AsyncClient, settings: Settings, account: Account
) -> None:
    created = await create_item(client, account, unique("cached"))
    assert succeeded(created), created.text
    item = item_id(created)

    async with behind_proxy(app, settings, "redis") as proxy:
        assert succeeded(await read_item(client, account, item))  # now cached
        await proxy.cut()

        # Reads come from the database; the session and rate limit checks fail open.
        assert succeeded(await read_item(client, account, item))
        assert succeeded(await list_page(client, account))
        assert not await ready(client)

        await proxy.restore()
        await eventually(lambda: ready(client))
        assert succeeded(await read_item(client, account, item))


async def test_redis_outage_answers_503_when_set_to_fail_closed(
    app: FastAPI, client: AsyncClient, settings: Settings, account: Account
) -> None:
    async with behind_proxy(app, settings, "redis", fail_open=False) as proxy:
        assert succeeded(await list_page(client, account))
        await proxy.cut()
        assert unavailable(await list_page(client, account))
        await proxy.restore()
        await eventually(lambda: ready(client))
        assert succeeded(await list_page(client, account))
