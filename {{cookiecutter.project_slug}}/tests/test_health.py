import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client import REGISTRY

from app.settings import Settings
from tests.conftest import COMPONENT, unreachable_dependency


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
