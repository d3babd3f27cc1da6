"""Security headers and CORS, on the real application."""

import pytest
from fastapi.routing import iter_route_contexts
from httpx import ASGITransport, AsyncClient

from app.core.middleware import API_CSP, DOCS_CSP, HSTS
from app.main import create_app
from app.settings import Settings
from tests.conftest import override

ALLOWED = "https://app.example.com"


async def test_every_response_carries_the_security_headers(client: AsyncClient) -> None:
    for response in (
        await client.get("/health/live"),
        await client.get("/no-such-page"),
        await client.post("/health/live"),
    ):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["content-security-policy"] == API_CSP
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        # Plain HTTP: a browser ignores HSTS there, and it must not be sent.
        assert "strict-transport-security" not in headers


async def test_hsts_over_https(client: AsyncClient) -> None:
    response = await client.get("https://test/health/live")
    assert response.headers["strict-transport-security"] == HSTS


async def test_the_docs_page_gets_a_restrictive_policy(settings: Settings) -> None:
    # The interactive docs exist in development only; they need no running services.
    development = create_app(override(settings, "app", environment="development"))
    async with AsyncClient(transport=ASGITransport(app=development), base_url="http://t") as c:
        page = await c.get("/docs")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert policy == DOCS_CSP
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    assert "*" not in policy
    assert page.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("configured", [[], [ALLOWED]])
async def test_cors_allows_only_the_configured_origins(
    settings: Settings, configured: list[str]
) -> None:
    app = create_app(override(settings, "app", cors_origins=configured))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        for origin in (ALLOWED, "https://evil.example.net", "null"):
            simple = await client.get("/health/live", headers={"Origin": origin})
            preflight = await client.options(
                "/health/live",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            allowed = origin in configured
            for response in (simple, preflight):
                granted = response.headers.get("access-control-allow-origin")
                assert granted == (origin if allowed else None), (origin, configured)
            assert "access-control-allow-credentials" not in simple.headers
            if allowed:
                assert preflight.status_code == 200
                assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


async def test_cors_preflights_grant_the_methods_and_headers_the_api_takes(
    settings: Settings,
) -> None:
    """Each method a route takes, and no other, and the trace context.
{%- if cookiecutter.api == "rest" %}
    PUT, which sets a role, and HEAD were refused to browsers."""
{%- else %}
    HEAD was refused to browsers, and PATCH, DELETE and `Idempotency-Key`, which this
    API does not take, were offered."""
{%- endif %}
    app = create_app(override(settings, "app", cors_origins=[ALLOWED]))
    taken = {
        method for route in iter_route_contexts(app.routes) for method in route.methods or ()
    } | {"HEAD"}  # every GET is served as HEAD too
{%- if cookiecutter.api == "rest" %}
    headers = {
        parameter["name"].lower()
        for operations in app.openapi()["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "header"
    }
    assert "idempotency-key" in headers
{%- else %}
    headers = set()
{%- endif %}
    headers |= {"authorization", "content-type", "x-request-id", "traceparent", "tracestate"}
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        for method in (*taken, "TRACE"):
            preflight = await client.options(
                "/health/live",
                headers={
                    "Origin": ALLOWED,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": ", ".join(sorted(headers)),
                },
            )
            assert preflight.status_code == (200 if method in taken else 400), method
            if method in taken:
                granted = preflight.headers["access-control-allow-methods"]
                assert set(granted.split(", ")) == taken
                offered = set(preflight.headers["access-control-allow-headers"].split(", "))
                # Besides the API's: those CORS lets every request send.
                assert {name.lower() for name in offered} - headers <= {
                    "accept",
                    "accept-language",
                    "content-language",
                }
