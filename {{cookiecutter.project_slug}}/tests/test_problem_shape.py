"""Every error the service answers over HTTP has the one shape, whatever layer produced
it: an RFC 9457 problem (`application/problem+json`) with `type`, `title` (RFC 9110's
reason phrase), `status`, `detail`, `code` and `request_id`. A table walks each layer;
a layer added to the app without a row in it fails `test_every_middleware_has_a_row`."""

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from prometheus_client import REGISTRY

from app.main import create_app
from app.settings import Settings
from tests.conftest import FailingDatabase, override, serving, unique_address

# RFC 9110's reason phrases (section 15), independent of the code under test.
REASON = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
{%- if cookiecutter.api == "rest" %}
REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
MULTIPART = {"content-type": "multipart/form-data; boundary=xyz"}
JSON = {"content-type": "application/json"}
ACCOUNT = {"email": "problem-shape@example.com", "password": "Corr3ct-horse-battery!"}
{%- else %}
JSON = {"content-type": "application/json"}
# Valid JSON, with a number longer than `int()` takes (sys.get_int_max_str_digits: 4300).
HUGE_NUMBER = b'{"query": "{ __typename }", "variables": {"n": ' + b"9" * 5000 + b"}}"
{%- endif %}


@dataclass(frozen=True)
class Context:
    client: AsyncClient
    app: FastAPI
    settings: Settings

    def streamed(self, *, over: int = 1) -> AsyncIterator[bytes]:
        """A body of the size limit plus `over` bytes, sent without a Content-Length."""
        size = self.settings.app.max_body_bytes + over

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, size, 65536):
                yield b"x" * min(65536, size - start)

        return chunks()


Send = Callable[[Context], Awaitable[Response]]


@dataclass(frozen=True)
class Layer:
    name: str
    status: int
    send: Send
    # For a validation problem: where the request is invalid.
    locations: tuple[tuple[str | int, ...], ...] = ()


async def api_request(client: AsyncClient) -> Response:
    """A request to the API, without credentials."""
{%- if cookiecutter.api == "rest" %}
    return await client.get("/api/v1/users/me")
{%- else %}
    return await client.post("/graphql", json={"query": "{ __typename }"})
{%- endif %}


async def rate_limited(context: Context) -> Response:
    strict = override(context.settings, "rate_limit", api_per_minute=1)
    transport = ASGITransport(app=context.app, client=(unique_address(), 1234))
    async with (
        serving(context.app, settings=strict),
        AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        await api_request(client)
        return await api_request(client)


async def unexpected(context: Context) -> Response:
    app = create_app(context.settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/boom")


async def preflight(context: Context, **headers: str) -> Response:
    request = {"origin": "https://evil.example", "access-control-request-method": "GET"}
    return await context.client.options("/health/live", headers=request | headers)


EVERY_API = [
    Layer("routing: unknown path", 404, lambda c: c.client.get("/nowhere")),
    Layer("routing: method not allowed", 405, lambda c: c.client.put("/health/live")),
    Layer("CORS: preflight from an origin not allowed", 400, preflight),
    Layer(
        "CORS: preflight for a method not allowed",
        400,
        lambda c: preflight(c, **{"access-control-request-method": "TRACE"}),
    ),
    Layer(
        "body limit: Content-Length over it",
        413,
        lambda c: c.client.post("/health/live", content=b"x" * (c.settings.app.max_body_bytes + 1)),
    ),
    Layer(
        "routing: unknown path, with a streamed body under the limit",
        404,
        lambda c: c.client.post("/nowhere", content=c.streamed(over=-1)),
    ),
    Layer(
        "body limit: a streamed body over it, to an unknown path",
        413,
        lambda c: c.client.post("/nowhere", content=c.streamed()),
    ),
    Layer("rate limit", 429, rate_limited),
    Layer("unexpected exception", 500, unexpected),
]
{%- if cookiecutter.api == "rest" %}
API_LAYERS = [
    Layer(
        "validation: the body",
        422,
        lambda c: c.client.post(REGISTER, json={}),
        (("body", "email"), ("body", "password")),
    ),
    Layer(
        "validation: JSON syntax",
        422,
        lambda c: c.client.post(REGISTER, content=b"{", headers=JSON),
        (("body", 1),),
    ),
    Layer(
        "validation: a repeated query parameter",
        422,
        lambda c: c.client.get("/api/v1/items", params=[("limit", 5), ("limit", 10)]),
        (("query", "limit"),),
    ),
    Layer(
        "validation: a repeated single-valued header",
        422,
        lambda c: c.client.post(
            "/api/v1/items",
            json={"name": "twice"},
            headers=[("Idempotency-Key", "first-key-1"), ("Idempotency-Key", "other-key-2")],
        ),
        (("header", "Idempotency-Key"),),
    ),
    Layer(
        "validation: JSON that is not UTF-8",
        422,
        lambda c: c.client.post(REGISTER, content=b'{"email": "\xff"}', headers=JSON),
        (("body", 0),),
    ),
    Layer(
        "body parsing: multipart that does not parse",
        400,
        lambda c: c.client.post(TOKEN, content=b"not multipart", headers=MULTIPART),
    ),
    Layer(
        "body limit: a streamed body over it",
        413,
        lambda c: c.client.post(REGISTER, content=c.streamed(), headers=JSON),
    ),
    Layer(
        "body limit: a streamed multipart body over it that does not parse",
        413,
        lambda c: c.client.post(TOKEN, content=c.streamed(), headers=MULTIPART),
    ),
    Layer("application error", 401, lambda c: c.client.get("/api/v1/users/me")),
    Layer(
        "unexpected exception in a route",
        500,
        lambda c: failing_database(c, lambda: c.client.post(REGISTER, json=ACCOUNT)),
    ),
]
{%- else %}
API_LAYERS = [
    Layer(
        "GraphQL transport: not JSON",
        400,
        lambda c: c.client.post("/graphql", content=b"{}", headers={"content-type": "text/plain"}),
    ),
    Layer(
        "GraphQL transport: a number longer than the interpreter converts",
        400,
        lambda c: c.client.post("/graphql", content=HUGE_NUMBER, headers=JSON),
    ),
]
{%- endif %}
LAYERS = EVERY_API + API_LAYERS


async def failing_database(context: Context, send: Callable[[], Awaitable[Response]]) -> Response:
    async with serving(context.app, database=FailingDatabase()):
        return await send()


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["title"] == REASON[status]
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["code"], str)
    assert body["code"].isidentifier(), body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
async def test_every_error_is_a_problem_with_a_code(
    layer: Layer, client: AsyncClient, app: FastAPI, settings: Settings
) -> None:
    response = await layer.send(Context(client, app, settings))
    body = assert_problem(response, layer.status)
    if layer.status == 422:
        assert body["code"] == "invalid_input"
        assert [tuple(error["loc"]) for error in body["errors"]] == list(layer.locations)


def test_every_middleware_has_a_row(app: FastAPI) -> None:
    """Each middleware that can refuse a request has its rows above (by name prefix)."""
    rows = {
        "BodySizeLimitMiddleware": "body limit",
        "ProblemCORSMiddleware": "CORS",
        "RequestContextMiddleware": "unexpected exception",
        # These answer no error of their own.
        "HeadMiddleware": None,
        "SecurityHeadersMiddleware": None,
        "OpenTelemetryMiddleware": None,
    }
    names = {getattr(middleware.cls, "__name__", "") for middleware in app.user_middleware}
    assert names <= rows.keys(), f"a middleware without rows: {names - rows.keys()}"
    for prefix in filter(None, rows.values()):
        assert any(layer.name.startswith(prefix) for layer in LAYERS), prefix


def test_no_query_parameter_takes_a_list(app: FastAPI) -> None:
    """A repeated query parameter is refused (app/api/rest/__init__.py); that holds while
    no parameter of the API is declared to take several values."""
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert "array" not in str(parameter["schema"]), (method, path, parameter)


def http_requests(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_head_is_answered_as_get_without_a_body(client: AsyncClient) -> None:
    before = http_requests("HEAD", "/health/live", "200")
    get = await client.get("/health/live")
    head = await client.head("/health/live")
    assert head.status_code == 200
    assert head.content == b""
    for header in ("content-type", "content-length", "cache-control"):
        assert head.headers[header] == get.headers[header]
    # Counted as a HEAD of the route that served it.
    assert http_requests("HEAD", "/health/live", "200") == before + 1


async def test_head_where_get_is_not_served_is_refused_as_get_would_be(
    client: AsyncClient,
) -> None:
    missing = await client.head("/nowhere")
    assert missing.status_code == 404
    assert missing.content == b""
{%- if cookiecutter.api == "rest" %}
    post_only = await client.head(REGISTER)
    assert post_only.status_code == 405
    assert post_only.headers["allow"] == "POST"
{%- endif %}


async def test_a_405_lists_every_method_its_path_answers(client: AsyncClient, app: FastAPI) -> None:
    """RFC 9110 (15.5.6). It listed only the methods of the first route whose path
    matched: GET for an item, which PATCH and DELETE take too."""
    declared = {"/health/live": {"GET"}}
{%- if cookiecutter.api == "rest" %}
    for path, operations in app.openapi()["paths"].items():
        declared[path] = {method.upper() for method in operations}
    assert {"GET", "PATCH", "DELETE"} in declared.values()
{%- else %}
    declared["/graphql"] = {"GET", "POST"}
{%- endif %}
    for path, methods in declared.items():
        url = re.sub(r"\{\w+\}", "0190f5a0-0000-7000-8000-000000000000", path)
        for method in ("TRACE", "PUT"):
            if method in methods:
                continue
            response = await client.request(method, url)
            assert_problem(response, 405)
            allowed = methods | {"HEAD"} if "GET" in methods else methods
            assert response.headers["allow"] == ", ".join(sorted(allowed)), (method, path)
