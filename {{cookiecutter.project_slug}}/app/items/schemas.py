from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator

from app.core.pagination import PAGE_DEFAULT, PAGE_MAX
from app.core.types import CursorTime, DisplayText, Name, UtcDateTime, integral

NAME_MAX = 100
DESCRIPTION_MAX = 2000
PRICE_MAX = 1_000_000_000
ItemStatus = Literal["draft", "active", "archived"]
# An integer (5.0 too: app/core/types.py `integral`), its bounds set before the
# validator: after it they were no constraint of the schema's (`ge` and `le` where
# `minimum` and `maximum` belong).
Price = Annotated[int, Field(ge=0, le=PRICE_MAX), BeforeValidator(integral)]
# The sort orders offered: a field, descending with a leading "-".
ItemSort = Literal["created_at", "-created_at", "name", "-name", "price_cents", "-price_cents"]
# Each sort field's type and range: a cursor's value is checked against them (cursors are
# opaque but not signed, so a forged one must still hold a value the field can).
SORT_TYPES: dict[str, Any] = {
    "created_at": CursorTime,
    "name": Annotated[Name, Strict(), Field(min_length=1, max_length=NAME_MAX)],
    "price_cents": Annotated[int, Strict(), Field(ge=0, le=PRICE_MAX)],
}


class ItemCreate(BaseModel):
    # Strict: JSON's types as documented, so `true` or "5" is no price.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    name: Name = Field(min_length=1, max_length=NAME_MAX)
    description: DisplayText = Field(default="", max_length=DESCRIPTION_MAX)
    price_cents: Price = 0
    status: ItemStatus = "draft"


def _not_nullable(schema: dict[str, Any]) -> None:
    """Each property's schema as the model takes it: its type, not null (refused)."""
    for field in schema.get("properties", {}).values():
        branches = [branch for branch in field.pop("anyOf", []) if branch.get("type") != "null"]
        if len(branches) == 1:
            field.update(branches[0])
        if "default" in field and field["default"] is None:
            del field["default"]


class ItemUpdate(BaseModel):
    """A partial update: only the fields given change. A field given is changed, so null
    is refused for each (it was taken and changed nothing); left out, a field keeps its
    value. The schema says so: no field is nullable there."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, strict=True, json_schema_extra=_not_nullable
    )

    name: Name | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: DisplayText | None = Field(default=None, max_length=DESCRIPTION_MAX)
    price_cents: Price | None = None
    status: ItemStatus | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _given_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("a field given cannot be null; leave it out to keep its value")
        return value

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True, exclude_none=True)


class ItemQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ItemStatus | None = None
    owner_id: UUID | None = None
    sort: ItemSort = "-created_at"
    limit: int = Field(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(default=None, max_length=512)

    @property
    def sort_field(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def sort_type(self) -> Any:
        return SORT_TYPES[self.sort_field]


class ItemPublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: UUID
    owner_id: UUID
    name: str
    description: str
    price_cents: int
    status: ItemStatus
    created_at: UtcDateTime
    updated_at: UtcDateTime
