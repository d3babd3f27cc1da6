"""The metrics people alert on move when their event happens, and their labels stay
bounded whatever a request carries."""

from uuid import uuid4

import pytest
from httpx import AsyncClient
from prometheus_client import REGISTRY
from pydantic import BaseModel

from app.core.metrics import rate_limit_name
from app.services import Services
from app.settings import Settings
from tests.conftest import Account, eventually, new_item


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def scrape(client: AsyncClient, settings: Settings) -> str:
    token = settings.metrics.token.get_secret_value()
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.text


async def test_unmatched_paths_collapse_into_one_route_label(
    client: AsyncClient, settings: Settings
) -> None:
    before = sample("http_requests_total", method="GET", route="unmatched", status="404")
    path = f"/no-such-page-{uuid4().hex}"
    assert (await client.get(path)).status_code == 404
    text = await scrape(client, settings)
    assert sample("http_requests_total", method="GET", route="unmatched", status="404") == (
        before + 1
    )
    assert path not in text


class Probe(BaseModel):
    value: int


async def test_cache_hits_and_misses_are_counted(services: Services) -> None:
    name = f"metrics-probe:{uuid4().hex}"
    hits = sample("cache_lookups_total", model="Probe", result="hit")
    misses = sample("cache_lookups_total", model="Probe", result="miss")
    miss = await services.cache.lookup(name, Probe)
    assert miss.value is None
    await services.cache.fill(miss, Probe(value=1), seconds=60)
    assert (await services.cache.lookup(name, Probe)).value == Probe(value=1)
    assert sample("cache_lookups_total", model="Probe", result="miss") == misses + 1
    assert sample("cache_lookups_total", model="Probe", result="hit") == hits + 1


async def test_rate_limit_rejections_are_counted_by_limit(services: Services) -> None:
    key = f"login-ip:metrics-{uuid4().hex}"
    before = sample("rate_limit_rejections_total", limit="login-ip")
    assert (await services.limiter.hit(key, limit=1)).allowed
    assert not (await services.limiter.hit(key, limit=1)).allowed
    assert not (await services.limiter.hit(key, limit=1)).allowed
    assert sample("rate_limit_rejections_total", limit="login-ip") == before + 2


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("api:ip:10.0.0.1", "api"),
        ("api:user:5", "api"),
        ("login-account:someone@example.com:10.0.0.1", "login-account"),
        ("failure-records:10.0.0.1", "failure-records"),
        ("someone@example.com", "other"),
        ("", "other"),
    ],
)
def test_rate_limit_label_is_the_limit_never_the_key(key: str, name: str) -> None:
    assert rate_limit_name(key) == name


async def test_outbox_backlog_is_measured_at_scrape(
    client: AsyncClient, settings: Settings, services: Services, account: Account
) -> None:
    # The relay stopped, an event waits in the outbox: the scrape sees it, and its age.
    await services.relay.stop()
    try:
        await new_item(services, account)
        await scrape(client, settings)
        assert sample("outbox_pending_events") >= 1
        assert sample("outbox_oldest_pending_age_seconds") >= 0
        assert sample("health_dependency_up", dependency="database") == 1
    finally:
        services.relay.start()
        services.relay.wake()

    async def drained() -> bool:
        # Another event (a sealer's checkpoint) may be written meanwhile: scrape until
        # the relay has caught up with all of them.
        await scrape(client, settings)
        return sample("outbox_pending_events") == 0

    await eventually(drained)
    assert sample("outbox_oldest_pending_age_seconds") == 0
