import unicodedata
from functools import cache
from importlib.resources import files
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from app.core.types import UtcDateTime

Role = Literal["user", "admin"]
PASSWORD_MIN = 10
PASSWORD_MAX = 128
# How many earlier passwords a new one may not repeat.
PASSWORD_HISTORY = 3


# Characters nobody sees or types on purpose: controls, format characters (zero-width
# spaces and joiners, direction marks), line and paragraph separators, private-use,
# surrogates and unassigned code points. They would make a password look longer than
# it is, or one nobody can type again.
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"}


def normalise_password(password: str) -> str:
    """The form a password is hashed and checked in (NFKC): the same password typed on
    another keyboard or input method gives the same characters."""
    return unicodedata.normalize("NFKC", password)


@cache
def common_passwords() -> frozenset[str]:
    """The most used passwords that would pass the other rules, lower case."""
    text = files("app.auth").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def _strong(password: str) -> str:
    password = normalise_password(password)
    if any(unicodedata.category(c) in _INVISIBLE for c in password):
        raise ValueError("password contains invisible or control characters")
    if password != password.strip():
        raise ValueError("password starts or ends with spaces")
    # Runs of spaces count once, so padding cannot make up the length.
    if len(" ".join(password.split())) < PASSWORD_MIN:
        raise ValueError(f"password needs at least {PASSWORD_MIN} characters besides padding")
    if password.lower() in common_passwords():
        raise ValueError("password is one of the most commonly used")
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


class RegistrationAccepted(BaseModel):
    """What registration answers, whether or not the address already had an account."""

    detail: str


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


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
    # Raised to end every session (see app/auth/tokens.py).
    token_version: int = 0

    def public(self) -> UserPublic:
        return UserPublic.model_validate(self, from_attributes=True)
