from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class PageMeta(BaseModel):
    limit: int
    next_cursor: str | None


class Paginated(BaseModel, Generic[T]):
    """The list shape: the rows, and how to ask for the next page."""

    data: list[T]
    meta: PageMeta


class RefreshRequest(BaseModel):
    refresh_token: str
