"""What production serves to anyone: no map of the API or the events, no open metrics."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.main import create_app
from app.services import Services
from app.settings import Settings
from tests.conftest import override


@asynccontextmanager
async def served(
    settings: Settings, services: Services, **app: object
) -> AsyncIterator[AsyncClient]:
    """An application with these app settings, on the suite's running services."""
    application: FastAPI = create_app(override(settings, "app", **app))
    application.state.services = services
    async with AsyncClient(transport=ASGITransport(app=application), base_url="http://t") as c:
        yield c


async def test_production_serves_no_api_description(settings: Settings, services: Services) -> None:
    async with served(settings, services, environment="production") as client:
        for path in ("/openapi.json", "/docs", "/redoc", "/asyncapi.json"):
            assert (await client.get(path)).status_code == 404, path


async def test_the_descriptions_can_be_turned_on_in_production(
    settings: Settings, services: Services
) -> None:
    async with served(
        settings, services, environment="production", docs_enabled=True, asyncapi_enabled=True
    ) as client:
        assert (await client.get("/openapi.json")).status_code == 200
        asyncapi = await client.get("/asyncapi.json")
    assert asyncapi.status_code == 200
    # FastStream calls its one server "development", whatever it is.
    assert "development" not in asyncapi.text
    assert list(asyncapi.json()["servers"]) == ["production"]


async def test_development_and_test_serve_the_descriptions(
    settings: Settings, services: Services
) -> None:
    for environment in ("development", "test"):
        async with served(settings, services, environment=environment) as client:
            assert (await client.get("/openapi.json")).status_code == 200
            assert (await client.get("/asyncapi.json")).status_code == 200


def test_asyncapi_server_references_follow_the_name(services: Services) -> None:
    document = services.bus.specification(environment="staging")
    assert list(document["servers"]) == ["staging"]
    references = [
        server["$ref"]
        for channel in document["channels"].values()
        for server in channel.get("servers", [])
    ]
    assert references
    assert set(references) == {"#/servers/staging"}


async def test_metrics_need_the_token_outside_development(
    settings: Settings, services: Services
) -> None:
    token = settings.metrics.token.get_secret_value()
    async with served(settings, services, environment="production") as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {token}"})
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        # The scheme's name is case-insensitive (RFC 9110), as for the API's tokens.
        lower = await client.get("/metrics", headers={"Authorization": f"bearer {token}"})
    for refused in (anonymous, wrong, basic):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert "http_requests_total" not in refused.text
    for accepted in (right, lower):
        assert accepted.status_code == 200
        assert "http_requests_total" in accepted.text


async def test_metrics_are_open_in_development(settings: Settings, services: Services) -> None:
    async with served(settings, services, environment="development") as client:
        assert (await client.get("/metrics")).status_code == 200
