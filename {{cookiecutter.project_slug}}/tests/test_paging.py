"""Following keyset cursors to the end: every row once, and a source that does not advance
fails with a name instead of looping forever."""

from collections.abc import Sequence

import pytest

from app.core.pagination import PagingStuckError, every_page

ROWS = list(range(1, 251))


async def pages_after(cursor: int | None, *, inclusive: bool = False) -> Sequence[int]:
    """Rows after the cursor, 100 a page; `inclusive` is the `>=`-for-`>` bug."""
    start = 0 if cursor is None else cursor - (1 if inclusive else 0)
    return ROWS[start : start + 100]


async def test_every_page_returns_each_row_once() -> None:
    assert await every_page(pages_after, lambda row: row) == ROWS


async def test_a_cursor_that_does_not_advance_raises() -> None:
    async def inclusive(cursor: int | None) -> Sequence[int]:
        return await pages_after(cursor, inclusive=True)

    # Here a page ends on the row the next one starts with: 100, 100, 100, ... forever.
    async def last_row_again(cursor: int | None) -> Sequence[int]:
        return [cursor] if cursor is not None else ROWS[:100]

    with pytest.raises(PagingStuckError, match="did not advance past cursor 100"):
        await every_page(last_row_again, lambda row: row)
    # With the inclusive bound each page starts one row early: it still ends, on the last
    # row repeated, and the cursor stops there.
    with pytest.raises(PagingStuckError, match="did not advance past cursor 250"):
        await every_page(inclusive, lambda row: row)


async def test_a_cursor_that_comes_back_raises() -> None:
    """A source cycling between two pages would never end either."""

    async def cycling(cursor: int | None) -> Sequence[int]:
        return [1, 2] if cursor in (None, 4) else [3, 4]

    with pytest.raises(PagingStuckError, match="cursor 2"):
        await every_page(cycling, lambda row: row)
