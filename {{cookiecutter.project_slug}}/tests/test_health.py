import asyncio
import time
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client import REGISTRY

from app.api.health import PING_INTERVAL_SECONDS
from app.services import Services
from app.settings import Settings
from tests.conftest import COMPONENT, serving, unreachable_dependency


async def test_live(client: AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_every_dependency(client: AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "broker": "ok"},
    }


@pytest.mark.parametrize("dependency", sorted(COMPONENT))
async def test_ready_names_the_failing_dependency(
    app: FastAPI, client: AsyncClient, settings: Settings, dependency: str
) -> None:
    async with unreachable_dependency(app, settings, dependency):
        response = await client.get("/health/ready")
    # The readiness is a metric too, for an alert that needs nothing to probe the endpoint.
    assert REGISTRY.get_sample_value("health_dependency_up", {"dependency": dependency}) == 0

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == f"Not ready: {dependency}."
    assert body["checks"] == {
        name: "unavailable" if name == dependency else "ok" for name in COMPONENT
    }


class CountedPings:
    """The real dependency, its pings counted."""

    def __init__(self, dependency: Any) -> None:
        self.dependency = dependency
        self.pings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dependency, name)

    async def ping(self) -> bool:
        self.pings += 1
        return bool(await self.dependency.ping())


async def test_readiness_pings_each_dependency_at_most_once_a_second_however_often_asked(
    app: FastAPI, client: AsyncClient, services: Services
) -> None:
    fields = ("database", "cache", "bus")
    counted = {field: CountedPings(getattr(services, field)) for field in fields}
    async with serving(app, **counted):
        started = time.monotonic()
        # A burst at once, then one after the other: all answered, by one ping each.
        answers = await asyncio.gather(*(client.get("/health/ready") for _ in range(50)))
        answers += [await client.get("/health/ready") for _ in range(20)]
        elapsed = time.monotonic() - started
        assert all(answer.status_code == 200 for answer in answers)
        # One ping per interval begun (one, unless this machine took over a second).
        bound = 1 + int(elapsed / PING_INTERVAL_SECONDS)
        assert all(dependency.pings <= bound for dependency in counted.values()), elapsed
        before = {field: dependency.pings for field, dependency in counted.items()}

        await asyncio.sleep(PING_INTERVAL_SECONDS)
        assert (await client.get("/health/ready")).status_code == 200
        assert {field: dependency.pings for field, dependency in counted.items()} == {
            field: pings + 1 for field, pings in before.items()
        }


async def test_request_id_is_echoed_or_made(client: AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    # An id that is not short and plain is replaced, so logs never carry raw input.
    replaced = await client.get("/health/live", headers={"X-Request-ID": "a b\tc" * 20})
    assert replaced.headers["x-request-id"] != "a b\tc" * 20
    assert len(replaced.headers["x-request-id"]) == 32


async def test_metrics_are_exposed(client: AsyncClient, settings: Settings) -> None:
    await client.get("/health/live")
    token = settings.metrics.token.get_secret_value()
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert 'http_requests_total{method="GET",route="/health/live",status="200"}' in response.text
    for dependency in COMPONENT:
        line = "health_dependency_up{dependency=" + f'"{dependency}"' + "} 1.0"
        assert line in response.text
