import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client import REGISTRY
from starlette.types import Message

from app.core.logging import configure_logging


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream)
    yield stream
    configure_logging(level="INFO", json=True)


async def test_each_request_logs_one_json_line_with_its_request_id(
    client: AsyncClient, log_lines: io.StringIO
) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "log-test-1"})
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    access = [line for line in lines if line.get("event") == "request"]
    assert len(access) == 1
    assert access[0]["request_id"] == response.headers["x-request-id"] == "log-test-1"
    assert access[0]["status"] == 200
    assert access[0]["path"] == "/health/live"
    assert access[0]["level"] == "info"
    assert "timestamp" in access[0]


def test_standard_library_loggers_share_the_format(log_lines: io.StringIO) -> None:
    logging.getLogger("some.library").warning("disk %s is %d%% full", "/data", 91)
    (line,) = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert line["event"] == "disk /data is 91% full"
    assert line["level"] == "warning"
    assert line["logger"] == "some.library"


def _deep(depth: int, message: str) -> None:
    if depth:
        _deep(depth - 1, message)
    raise ValueError(message)


def test_an_unexpected_errors_log_line_is_bounded(log_lines: io.StringIO) -> None:
    """A deep traceback and a huge message (say, a forged value quoted by a driver) still
    make one line of a few KB, which keeps the error's type and where it was raised."""
    log = structlog.get_logger("test")
    try:
        _deep(200, "value out of range: " + "9" * 100_000)
    except ValueError:
        log.exception("unhandled_error", detail="x" * 100_000, context={"big": "y" * 100_000})
    (line,) = log_lines.getvalue().splitlines()
    assert len(line.encode()) < 16 * 1024
    entry = json.loads(line)
    assert entry["event"] == "unhandled_error"
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: value out of range" in entry["exception"]
    assert "characters cut" in entry["exception"]
    assert len(entry["detail"]) < 4096


BODY_READING_PATH = "{% if cookiecutter.api == 'rest' %}/api/v1/items{% else %}/graphql{% endif %}"


def served_with_status(status: str) -> float:
    labels = {"method": "POST", "route": BODY_READING_PATH, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_a_client_gone_before_its_body_is_read_is_no_server_error(
    app: FastAPI, log_lines: io.StringIO
) -> None:
    """Logged as an unhandled error with a traceback, counted a 500 and sent to Sentry:
    anyone could raise the 5xx rate by hanging up mid-body."""
    pending: list[Message] = [
        {"type": "http.request", "body": b'{"query', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": BODY_READING_PATH,
        "raw_path": BODY_READING_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    errors_before = served_with_status("500")
    await app(scope, receive, send)

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [line["event"] for line in lines if line["level"] in ("error", "critical")] == []
    (access,) = [line for line in lines if line.get("event") == "request"]
    # 499 (nginx's "client closed request"); FastAPI itself answers a body it could not
    # read 400 before the app sees it.
    assert 400 <= access["status"] < 500
    assert served_with_status(str(access["status"])) >= 1
    assert served_with_status("500") == errors_before
    assert not [message for message in sent if message.get("status") == 500]
