"""Keyset pagination: an opaque cursor holds the sort value and id of the last row.

Unlike offsets, a keyset page costs the same at any depth and never skips or
repeats rows when others are inserted meanwhile.
"""

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.core.errors import BadRequestError, InvalidInputError
from app.core.types import StorableText

PAGE_DEFAULT = 20
PAGE_MAX = 100
# Longer tokens are refused before they are decoded; the API's own are far shorter.
CURSOR_MAX = 512
T = TypeVar("T")
C = TypeVar("C")
K = TypeVar("K")
T_co = TypeVar("T_co", covariant=True)
K_contra = TypeVar("K_contra", contravariant=True)


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


def reversed_sort(sort: str) -> str:
    """The same order backwards: "-name" for "name", "name" for "-name"."""
    return sort[1:] if sort.startswith("-") else f"-{sort}"


@dataclass(frozen=True)
class Window:
    """The part of a list a Relay connection asks for (the Cursor Connections
    specification's arguments): `first` rows after a cursor or from the start, or `last`
    rows before a cursor or up to the end. `after` and `before` may both bound either.
    With neither size, the first PAGE_DEFAULT rows."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    def __post_init__(self) -> None:
        # The specification allows both sizes at once but discourages it; its result is
        # hard to read, so it is refused.
        if self.first is not None and self.last is not None:
            raise InvalidInputError("Pass either first or last, not both.")
        for name, size in (("first", self.first), ("last", self.last)):
            if size is not None and not 0 <= size <= PAGE_MAX:
                raise InvalidInputError(f"{name} must be between 0 and {PAGE_MAX}.")
        for name, cursor in (("after", self.after), ("before", self.before)):
            if cursor is not None and len(cursor) > CURSOR_MAX:
                raise InvalidInputError(f"Invalid input: {name} is longer than any cursor.")

    @property
    def backward(self) -> bool:
        return self.last is not None

    @property
    def size(self) -> int:
        size = self.last if self.last is not None else self.first
        return PAGE_DEFAULT if size is None else size


@dataclass(frozen=True)
class Slice(Generic[T]):
    """The rows a window selects, in list order, and whether the list goes on either way."""

    rows: list[T]
    has_previous: bool
    has_next: bool


class Travel(Protocol[T_co, K_contra]):
    """Rows in list order (or reversed), strictly beyond `beyond` and short of `stop`, two
    keys in the order travelled; at most `limit`."""

    async def __call__(
        self, *, reverse: bool, beyond: K_contra | None, stop: K_contra | None, limit: int
    ) -> Sequence[T_co]: ...


async def slice_window(
    travel: Travel[T, K],
    key: Callable[[T], K],
    window: Window,
    *,
    after: K | None,
    before: K | None,
) -> Slice[T]:
    """The specification's pagination algorithm on a keyset-paged source.

    Rows are read from `after` forwards (for `last`: from `before` backwards), one more
    than asked: that one tells whether the list goes on that way (hasNextPage, for
    `last` hasPreviousPage, exactly as the specification computes them). Whether it goes
    on the other way is the specification's optional part: answered when the window
    starts at a cursor, with one more read of one row, and false otherwise (nothing lies
    before the start). "Goes on" means a row lies beyond the window's first row that
    way, the cursor's own row included: what paging back from startCursor would return.
    """
    size = window.size
    start, stop = (before, after) if window.backward else (after, before)
    rows = await travel(reverse=window.backward, beyond=start, stop=stop, limit=size + 1)
    further = len(rows) > size
    behind = False
    if start is not None:
        # No row lies between the start cursor and the first row read, nor (when none was
        # read) between the start and the stop: rows behind either are those at or
        # behind the start.
        pivot = key(rows[0]) if rows else stop
        behind = bool(await travel(reverse=not window.backward, beyond=pivot, stop=None, limit=1))
    page = list(rows[:size])
    if window.backward:
        page.reverse()
        return Slice(rows=page, has_previous=further, has_next=behind)
    return Slice(rows=page, has_previous=behind, has_next=further)


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
