"""Keyset pagination: an opaque cursor holds the sort value and id of the last row.

Unlike offsets, a keyset page costs the same at any depth and never skips or
repeats rows when others are inserted meanwhile.
"""

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.core.errors import BadRequestError
from app.core.types import StorableText

PAGE_DEFAULT = 20
PAGE_MAX = 100
# Longer tokens are refused before they are decoded; the API's own are far shorter.
CURSOR_MAX = 512
T = TypeVar("T")
C = TypeVar("C")


class Cursor(BaseModel):
    sort: str
    # Cursors are opaque but not signed: a forged value must still be one a query can use.
    value: StorableText | int | datetime
    id: UUID

    def typed(self, kind: Any) -> "Cursor":
        """The cursor with its value read as the sort field's type (JSON has no dates).

        `kind` carries the field's strictness and bounds (e.g. `Annotated[int, Strict(),
        Field(ge=0)]`), so a number is no name, a text no price, and a value out of the
        field's range never reaches the database."""
        raw = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        try:
            value = TypeAdapter(kind).validate_json(json.dumps(raw))
        except (ValidationError, ValueError, OverflowError) as exc:
            raise BadRequestError("The cursor is not valid.") from exc
        return self.model_copy(update={"value": value})

    def encode(self) -> str:
        return base64.urlsafe_b64encode(self.model_dump_json().encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, *, sort: str) -> "Cursor":
        if len(token) > CURSOR_MAX:
            raise BadRequestError("The cursor is not valid.")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            # Strict: a float, a boolean or an object is no cursor value.
            cursor = cls.model_validate_json(raw, strict=True)
        except ValueError as exc:
            raise BadRequestError("The cursor is not valid.") from exc
        if cursor.sort != sort:
            raise BadRequestError("The cursor belongs to another sort order.")
        return cursor


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def to_page(rows: list[Any], *, limit: int, sort: str, field: str) -> Page[Any]:
    """Rows fetched with limit + 1: the extra one only tells that a next page exists."""
    items = rows[:limit]
    more = len(rows) > limit
    return Page(
        items=items, next_cursor=cursor_for(items[-1], sort=sort, field=field) if more else None
    )


def cursor_for(row: Any, *, sort: str, field: str) -> str:
    """The cursor that continues after this row (Relay's per-edge cursor)."""
    return Cursor(sort=sort, value=getattr(row, field), id=row.id).encode()


class PagingStuckError(RuntimeError):
    """A page source handed back a cursor it had already given: following it never ends."""


async def every_page(
    fetch: Callable[[C | None], Awaitable[Sequence[T]]], cursor_after: Callable[[T], C]
) -> list[T]:
    """Every row of a keyset-paged source, page after page until an empty one.

    A source whose cursor does not advance (a bound that includes the last row, say)
    would serve the same pages forever; this raises instead, naming the cursor.
    """
    rows: list[T] = []
    cursor: C | None = None
    given: list[C] = []
    while page := await fetch(cursor):
        rows.extend(page)
        cursor = cursor_after(page[-1])
        if cursor in given:
            raise PagingStuckError(f"the page source did not advance past cursor {cursor!r}")
        given.append(cursor)
    return rows
