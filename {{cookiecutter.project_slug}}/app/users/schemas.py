from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from app.core.types import UtcDateTime

Role = Literal["user", "admin"]
PASSWORD_MIN = 10
PASSWORD_MAX = 128
# How many earlier passwords a new one may not repeat.
PASSWORD_HISTORY = 3


def _strong(password: str) -> str:
    if not (
        any(c.isalpha() for c in password)
        and any(c.isdigit() for c in password)
        and any(not c.isalnum() and not c.isspace() for c in password)
    ):
        raise ValueError("password needs letters, digits and a symbol")
    return password


Email = Annotated[EmailStr, AfterValidator(str.lower)]
NewPassword = Annotated[
    str, Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX), AfterValidator(_strong)
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: NewPassword


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: NewPassword


class UserPublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: UUID
    email: str
    role: Role
    created_at: UtcDateTime


class User(UserPublic):
    """A user as stored: never returned by the API (see UserPublic)."""

    password_hash: str
    previous_password_hashes: list[str] = Field(default_factory=list)

    def public(self) -> UserPublic:
        return UserPublic.model_validate(self, from_attributes=True)
