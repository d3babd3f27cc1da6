from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class PageMeta(BaseModel):
    limit: int
    next_cursor: str | None


class Paginated(BaseModel, Generic[T]):
    """The list shape: the rows, and how to ask for the next page."""

    data: list[T]
    meta: PageMeta


# Far more than a token of this service takes (about 300 characters).
TOKEN_MAX = 4096


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=TOKEN_MAX)


class TokenForm(BaseModel):
    """OAuth2's password grant as a form (RFC 6749, 4.3.2): `username` is the email. A
    field it does not have is refused, as in every other body."""

    model_config = ConfigDict(extra="forbid")

    # A form cannot send null: these are left out, not null (the grant is the one there is).
    grant_type: Literal["password"] = "password"
    # An empty field is a missing one to the form parser: the document says so.
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)
    scope: str = ""
    client_id: str = ""
    client_secret: str = ""
