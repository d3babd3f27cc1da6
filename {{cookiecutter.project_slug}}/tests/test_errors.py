"""One error shape for the unexpected: 500, generic, logged with the request id."""

import io
import json

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.logging import configure_logging
from app.main import create_app
from app.settings import Settings


async def test_unexpected_error_is_generic_and_logged(settings: Settings) -> None:
    application: FastAPI = create_app(settings)

    @application.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream)
    try:
        transport = ASGITransport(app=application, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/boom", headers={"X-Request-ID": "boom-1"})
    finally:
        configure_logging(level="INFO", json=True)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "boom-1"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "An unexpected error occurred.",
        "request_id": "boom-1",
        "code": "internal_error",
    }
    assert "hunter2" not in response.text
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    (error,) = [line for line in logged if line["event"] == "unhandled_error"]
    assert error["request_id"] == "boom-1"
    assert "RuntimeError" in error["exception"]


async def test_unknown_route_is_a_problem(client: AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Not Found"
