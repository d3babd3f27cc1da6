"""Unexpected errors to Sentry, for real: the SDK sends to a server on loopback that
stands in for Sentry's ingestion API and keeps every envelope it receives."""

import asyncio
import gzip
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sentry_sdk
from fastapi import FastAPI, Request
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr

from app import about
from app.main import create_app
from app.observability.sentry import configure_sentry
from app.settings import Settings
from tests.conftest import override

EMAIL = "jane.doe@example.com"
TOKEN = "token-" + secrets.token_hex(8)
BODY_SECRET = "body-" + secrets.token_hex(8)


class Ingestion(ThreadingHTTPServer):
    envelopes: list[bytes]


class Recorder(BaseHTTPRequestHandler):
    server: Ingestion

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        else:
            # The SDK compresses with gzip unless the Brotli module is installed.
            assert encoding is None, f"unexpected encoding {encoding!r}"
        self.server.envelopes.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    server = Ingestion(("127.0.0.1", 0), Recorder)
    server.envelopes = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        # No client left behind: the rest of the suite sends nothing anywhere.
        sentry_sdk.get_client().close(timeout=5)
        sentry_sdk.get_global_scope().set_client(None)
        server.shutdown()
        server.server_close()


def events_in(envelope: bytes) -> list[dict[str, Any]]:
    """The error events of an envelope: a header line, then item headers and payloads."""
    lines = envelope.split(b"\n")[1:]
    events = []
    for header, payload in zip(lines[::2], lines[1::2], strict=False):
        if json.loads(header).get("type") == "event":
            events.append(json.loads(payload))
    return events


async def test_an_unexpected_error_goes_to_sentry_without_credentials_or_body(
    app: FastAPI, settings: Settings, ingestion: Ingestion
) -> None:
    """(`app`, the suite's, turns tracing on: the error carries the request's trace id.)"""
    dsn = f"http://public-key@127.0.0.1:{ingestion.server_address[1]}/42"
    application = create_app(override(settings, "sentry", dsn=SecretStr(dsn)))
    assert sentry_sdk.is_initialized()
    assert not sentry_sdk.get_client().should_send_default_pii()

    @application.post("/boom")
    async def boom(request: Request) -> None:
        await request.body()
        raise RuntimeError(f"no account for {EMAIL}")

    trace_id = secrets.token_hex(16)
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        "X-Request-ID": "sentry-1",
    }
    transport = ASGITransport(app=application, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/boom", json={"email": EMAIL, "password": BODY_SECRET}, headers=headers
        )
    assert response.status_code == 500
    # The SDK sends from its own thread; flush waits until it has.
    await asyncio.to_thread(sentry_sdk.flush, 10)

    raw = b"".join(ingestion.envelopes)
    (event,) = [event for envelope in ingestion.envelopes for event in events_in(envelope)]
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert event["release"] == f"{settings.app.name}@{about.VERSION}"
    assert event["environment"] == "test"
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    assert event["tags"]["trace_id"] == trace_id
    assert event["tags"]["request_id"] == "sentry-1"
    request = event["request"]
    assert request["method"] == "POST"
    assert request["url"].endswith("/boom")
    assert "data" not in request
    assert "cookies" not in request
    assert not {name.lower() for name in request["headers"]} & {"authorization", "cookie"}
    assert TOKEN.encode() not in raw
    assert BODY_SECRET.encode() not in raw
    for frame in exception["stacktrace"]["frames"]:
        assert "vars" not in frame
{%- if cookiecutter.compliance_logging %}
    # Masked as in the logs.
    assert exception["value"] == "no account for [email]"
    assert EMAIL.encode() not in raw
{%- else %}
    # Without compliance logging nothing is masked, in the logs or here.
    assert exception["value"] == f"no account for {EMAIL}"
{%- endif %}


def test_without_a_dsn_nothing_is_set_up(settings: Settings) -> None:
    assert configure_sentry(override(settings, "sentry", dsn=None)) is False
    assert not sentry_sdk.is_initialized()
