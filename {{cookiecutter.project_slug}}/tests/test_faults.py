"""Dependencies that go away mid-traffic: clean 503s, recovery without a restart, and
no acknowledged write lost. Each runs against the real server behind a FaultProxy."""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from prometheus_client import REGISTRY

from app.core.breakers import BreakerState, CircuitBreaker
from app.items.schemas import ItemQuery
from app.items.service import list_items
from app.services import Services
from app.settings import Settings
from tests.api import (
    create_item,
    item_id,
    list_page,
    read_item,
    stored_id,
    succeeded,
    unavailable,
)
from tests.conftest import Account, behind_proxy, eventually, override, unique
from tests.faults import FaultProxy
{% if cookiecutter.database == "mongodb" %}
# Without an answer in this time the database counts as down (the default is 5 s).
QUICK: dict[str, Any] = {"timeout_ms": 500}
# A stalled server: each try waits this long (server selection and connecting).
STALLED: dict[str, Any] = {"timeout_ms": 1000}
# A server that hangs mid-conversation: each read or write on a connection waits this long.
HUNG: dict[str, Any] = {"timeout_ms": 1000}
{%- else %}
QUICK: dict[str, Any] = {}
# A stalled server: each connection attempt waits this long.
STALLED: dict[str, Any] = {"connect_timeout_seconds": 1.0}
# A server that hangs mid-conversation: each statement, and each new connection, waits
# this long.
HUNG: dict[str, Any] = {"command_timeout_seconds": 1.0, "connect_timeout_seconds": 1.0}
{%- endif %}
# Answers timed once a breaker is open; the target is a p99 under 50 ms.
ANSWERS = 100
Request = Callable[[], Coroutine[Any, Any, Response]]


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
                acknowledged.append(stored_id(response))
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


async def test_a_database_that_hangs_mid_conversation_fails_requests_in_its_timeout(
    app: FastAPI, client: AsyncClient, settings: Settings, account: Account
) -> None:
    """The connections already open go silent, and new ones are never answered: each
    request is answered 503 once its timeout has passed (a few tries, as the driver makes
    them), not when the outage ends; a connection it held is not given back hung."""
    async with behind_proxy(app, settings, "database", **HUNG) as proxy:
        assert succeeded(await list_page(client, account))  # a connection open and pooled
        await proxy.freeze()
        started = time.monotonic()
        answers = await asyncio.wait_for(
            asyncio.gather(*(list_page(client, account) for _ in range(3))), timeout=20
        )
        took = time.monotonic() - started
        assert all(map(unavailable, answers)), [answer.text for answer in answers]
        assert took < 10, took
        await proxy.restore()

        async def recovered() -> bool:
            return succeeded(await list_page(client, account))

        await eventually(recovered)


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


def with_breakers(settings: Settings) -> Settings:
    """Breakers that open after three outages and stay open until the test says the reset
    time has passed (`reset_passes`): the figures cannot be spoilt by a probe."""
    return override(settings, "breaker", failure_threshold=3, reset_seconds=3600)


def state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state


def reset_passes(breaker: CircuitBreaker) -> None:
    """The reset time passes, without a sleep: the breaker opened that long ago."""
    breaker.opened_at -= breaker.reset_seconds


def refused(dependency: str) -> float:
    sample = "circuit_breaker_refused_total"
    return REGISTRY.get_sample_value(sample, {"dependency": dependency}) or 0.0


async def timed(call: Awaitable[Response]) -> tuple[float, Response]:
    start = time.perf_counter()
    response = await call
    return time.perf_counter() - start, response


def figures(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p50, p99 = (ordered[math.ceil(share * len(ordered)) - 1] for share in (0.5, 0.99))
    top = ordered[-1]
    return f"n={len(ordered)} p50={p50 * 1e3:.1f} ms p99={p99 * 1e3:.1f} ms max={top * 1e3:.1f} ms"


async def open_breaker(
    breaker: CircuitBreaker, request: Request, expected: Callable[[Response], bool]
) -> list[float]:
    """Requests until the breaker opens (each waits for the stalled server): their times."""
    slow: list[float] = []
    for _ in range(breaker.threshold):
        if state(breaker) is BreakerState.OPEN:
            break
        elapsed, response = await timed(request())
        assert expected(response), response.text
        slow.append(elapsed)
    assert state(breaker) is BreakerState.OPEN
    return slow


async def answers_while_open(
    breaker: CircuitBreaker,
    proxy: FaultProxy,
    requests: Sequence[Request],
    expected: Callable[[Response], bool],
) -> list[float]:
    """ANSWERS requests while the breaker is open: each is refused by it, none tries the
    server, and their times are returned."""
    attempts, before = proxy.stalled, refused(breaker.dependency)
    fast: list[float] = []
    for n in range(ANSWERS):
        elapsed, response = await timed(requests[n % len(requests)]())
        assert expected(response), response.text
        fast.append(elapsed)
    assert state(breaker) is BreakerState.OPEN
    assert refused(breaker.dependency) - before >= ANSWERS
{%- if cookiecutter.database == "mongodb" %}
    if breaker.dependency != "database":  # the driver's monitor keeps trying MongoDB itself
        assert proxy.stalled == attempts
{%- else %}
    assert proxy.stalled == attempts
{%- endif %}
    return fast


async def one_probe_at_a_time(
    breaker: CircuitBreaker,
    request: Request,
    expected: Callable[[Response], bool],
) -> None:
    """Past the reset time one request probes the stalled server; while it waits, the
    others are still refused at once; its failure opens the breaker again."""
    reset_passes(breaker)
    probe = asyncio.create_task(request())
    await eventually(lambda: asyncio.sleep(0, result=state(breaker) is BreakerState.HALF_OPEN))
    before = refused(breaker.dependency)
    assert expected(await request())
    assert refused(breaker.dependency) > before
    assert state(breaker) is BreakerState.HALF_OPEN
    assert expected(await probe)
    assert state(breaker) is BreakerState.OPEN


async def probe_recovers(breaker: CircuitBreaker, request: Request) -> None:
    """The server is back: past the reset time a probe closes the breaker (a pooled
    connection broken by the outage may fail one probe first)."""

    async def probe() -> bool:
        reset_passes(breaker)
        return succeeded(await request())

    await eventually(probe)
    assert state(breaker) is BreakerState.CLOSED


@pytest.mark.slow
async def test_an_open_database_breaker_answers_at_once_and_one_probe_recovers(
    app: FastAPI, client: AsyncClient, settings: Settings, account: Account
) -> None:
    async with behind_proxy(app, with_breakers(settings), "database", **STALLED) as proxy:
        breaker: CircuitBreaker = app.state.services.database.breaker
        assert succeeded(await create_item(client, account, unique("before")))
        await proxy.stall()
        slow = await open_breaker(
            breaker, lambda: create_item(client, account, unique("stalled")), unavailable
        )
        requests = [
            lambda: create_item(client, account, unique("refused")),
            lambda: list_page(client, account),
        ]
        fast = await answers_while_open(breaker, proxy, requests, unavailable)
        readiness = await client.get("/health/ready")
        assert readiness.json()["checks"]["database"] == "unavailable"
        print(f"\ndatabase stalled, before the breaker opened: {figures(slow)}")
        print(f"database stalled, breaker open: {figures(fast)}")

        await one_probe_at_a_time(breaker, lambda: list_page(client, account), unavailable)
        await proxy.restore()
        await probe_recovers(breaker, lambda: list_page(client, account))
        assert succeeded(await create_item(client, account, unique("after")))
        await eventually(lambda: ready(client))


@pytest.mark.slow
@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
async def test_an_open_redis_breaker_answers_at_once_and_one_probe_recovers(
    app: FastAPI, client: AsyncClient, settings: Settings, account: Account, fail_open: bool
) -> None:
    created = await create_item(client, account, unique("cached"))
    assert succeeded(created), created.text
    item = item_id(created)
    # Fail open, requests are served without Redis; fail closed, they are refused.
    expected = succeeded if fail_open else unavailable
    quick = {"fail_open": fail_open, "timeout_seconds": 0.5}
    async with behind_proxy(app, with_breakers(settings), "redis", **quick) as proxy:
        breaker: CircuitBreaker = app.state.services.cache.breaker
        assert succeeded(await read_item(client, account, item))
        await proxy.stall()
        slow = await open_breaker(breaker, lambda: read_item(client, account, item), expected)
        requests = [lambda: read_item(client, account, item), lambda: list_page(client, account)]
        fast = await answers_while_open(breaker, proxy, requests, expected)
        assert (await client.get("/health/ready")).json()["checks"]["redis"] == "unavailable"
        mode = "fail open" if fail_open else "fail closed"
        print(f"\nredis stalled ({mode}), before the breaker opened: {figures(slow)}")
        print(f"redis stalled ({mode}), breaker open: {figures(fast)}")

        await one_probe_at_a_time(breaker, lambda: list_page(client, account), expected)
        await proxy.restore()
        await probe_recovers(breaker, lambda: read_item(client, account, item))
        await eventually(lambda: ready(client))
