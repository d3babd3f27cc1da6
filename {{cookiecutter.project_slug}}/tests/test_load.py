"""Sixty-four requests at a time: no errors, and every connection is given back."""

import asyncio
from urllib.parse import urlsplit

import psutil
import pytest
from httpx import AsyncClient, Response

from app.services import Services
from app.settings import Settings
from tests.api import create_item, item_id, list_page, read_item, succeeded
from tests.conftest import Account, eventually, unique

CONCURRENCY = 64
# Each worker sends each kind of request (create, read, list) once.
REQUESTS_EACH = 3


def broker_connections(settings: Settings) -> int:
    """Open TCP connections from this process to the broker."""
    url = settings.broker.url
    port = urlsplit(url if "://" in url else f"tcp://{url}").port
    return sum(
        1
        for connection in psutil.Process().net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == port
    )


async def settled(services: Services) -> bool:
    """No event waiting to be published, no connection out of a pool."""
    return (
        await services.database.outbox.pending_count() == 0
        and services.database.connections_in_use == 0
        and services.cache.connections_in_use == 0
    )


# Hundreds of requests on a machine the suite may share: more than the default limit.
@pytest.mark.timeout(300)
async def test_concurrency_64_without_errors_or_leaked_connections(
    client: AsyncClient, services: Services, settings: Settings, account: Account
) -> None:
    seeded = [item_id(await create_item(client, account, unique("seed"))) for _ in range(8)]
    await eventually(lambda: settled(services))
    broker_before = broker_connections(settings)

    async def worker(number: int) -> list[Response]:
        answers = []
        for step in range(REQUESTS_EACH):
            kind = (number + step) % 3
            if kind == 0:
                answers.append(await create_item(client, account, unique("load")))
            elif kind == 1:
                answers.append(await read_item(client, account, seeded[step % len(seeded)]))
            else:
                answers.append(await list_page(client, account))
        return answers

    results = await asyncio.gather(*(worker(number) for number in range(CONCURRENCY)))
    answers = [answer for worker_answers in results for answer in worker_answers]

    assert len(answers) == CONCURRENCY * REQUESTS_EACH
    failed = [
        (answer.status_code, answer.text[:200]) for answer in answers if not succeeded(answer)
    ]
    assert failed == []
    # The writes' events are published, and every pool is back to idle.
    await eventually(lambda: settled(services))
    assert broker_connections(settings) == broker_before
