import io
import json
import logging
from collections.abc import Iterator

import pytest
from httpx import AsyncClient

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
