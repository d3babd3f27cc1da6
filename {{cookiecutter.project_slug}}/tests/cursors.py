"""Forged cursors: the API's own shape (cursors are opaque, not signed) holding values
that no sort field can take, for every sort order the API offers."""

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest

from app.core.logging import configure_logging
from app.items.schemas import NAME_MAX, PRICE_MAX

SORTS = ("created_at", "-created_at", "name", "-name", "price_cents", "-price_cents")
HUGE = 10**300  # still fits in a cursor of the longest length allowed
# Wrong for every field: not one of JSON's types a sort value has, or out of every range.
_ANY_FIELD: dict[str, Any] = {
    "huge integer": HUGE,
    "past int64": 2**63,
    "huge negative integer": -HUGE,
    "fraction": 1.5,
    "boolean": True,
    "null": None,
    "object": {"$gt": ""},
    "list": [1],
}
_BY_FIELD: dict[str, dict[str, Any]] = {
    "created_at": {
        "text": "x",
        "huge text": "x" * 300,
        "empty text": "",
        "time without offset": "2024-01-01T00:00:00",
        "time with no UTC form (before year 1)": "0001-01-01T00:00:00+01:00",
        "time with no UTC form (after year 9999)": "9999-12-31T23:59:59-01:00",
        "seconds since 1970 as text": "1700000000",
        "no such date": "2024-13-45T00:00:00+00:00",
        "integer": 1700000000,
    },
    "name": {
        "integer": 5,
        "empty text": "",
        "huge text": "x" * 300,
        "over the name's length": "x" * (NAME_MAX + 1),
        "NUL": "a\x00b",
        "lone surrogate": "\ud800",
    },
    "price_cents": {
        "over the price range": PRICE_MAX + 1,
        "negative": -1,
        "number as text": "5",
        "huge text": "9" * 300,
    },
}


def forge(sort: str, value: Any) -> str:
    raw = json.dumps({"sort": sort, "value": value, "id": str(UUID(int=0))}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def forged_cursors() -> list[Any]:
    """Parameters (sort, cursor, what is wrong with it) for every sort order."""
    return [
        pytest.param(sort, forge(sort, value), label, id=f"{sort}: {label}")
        for sort in SORTS
        for label, value in {**_ANY_FIELD, **_BY_FIELD[sort.lstrip("-")]}.items()
    ]


# Longer than any cursor the API accepts: refused before it is decoded.
OVERLONG = forge("name", "x" * 2000)


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """The service's log lines while the block runs."""
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream)
    try:
        yield stream
    finally:
        configure_logging(level="INFO", json=True)


# What a refused request may log: its access line, never a traceback or an error.
SMALL_LINE = 1024


def assert_logged_small(stream: io.StringIO) -> None:
    # The test's own HTTP client logs the URL it asked for; that line is not the service's.
    lines = [line for line in stream.getvalue().splitlines() if '"logger": "httpx"' not in line]
    assert lines
    for line in lines:
        assert len(line.encode()) < SMALL_LINE, line[:300]
        assert "Traceback" not in line
        assert json.loads(line)["level"] not in ("error", "critical"), line[:300]
