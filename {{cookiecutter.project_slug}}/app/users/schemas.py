import itertools
import re
import unicodedata
from functools import cache
from importlib.resources import files
from typing import Annotated, Literal
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from zxcvbn import zxcvbn

from app.core.types import SHOWS_NOTHING, UtcDateTime

Role = Literal["user", "admin"]
PASSWORD_MIN = 10
PASSWORD_MAX = 128
# The longest address mail can deliver to (RFC 5321's path limit less its brackets).
EMAIL_MAX = 254
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


# zxcvbn's scale of how guessable a password is, from 0 to 4: 3 is "safely unguessable"
# (about 10^8 guesses and more, against a slow hash such as Argon2).
MIN_GUESS_SCORE = 3
# zxcvbn reads at most 72 characters and takes longer the longer the text (70 ms at 72):
# the first 32 are judged, so a password weak at its start is weak.
GUESS_CHECKED = 32


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
    # Past the rules and the list, a word dressed up (`P@ssw0rd2024`), a keyboard walk
    # (`1q2w3e4r!!`), a repetition (`a1!a1!a1!a1!`) or a date is still guessed in few tries.
    guessed = zxcvbn(password[:GUESS_CHECKED])
    if guessed["score"] < MIN_GUESS_SCORE:
        warning = str(guessed["feedback"]["warning"] or "").rstrip(".")
        raise ValueError(f"password is too easy to guess{': ' if warning else ''}{warning}")
    return password


# Latin letters drawn as ASCII ones: dotless i and j, kra, and the phonetic alphabets'
# (small capitals, the Latin alpha). No name needs them in an address.
_LATIN_LOOK_ALIKES = re.compile("[\u0131\u0138\u0237\u0250-\u02af\u1d00-\u1dbf]")
# Scripts whose letters pass for Latin ones (or each other's).
_CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})
# Scripts Latin letters are written beside (Korean, Chinese, Japanese): none of their
# letters passes for a Latin one.
_BESIDE_LATIN = frozenset({"LATIN", "CJK", "HANGUL", "HIRAGANA", "KATAKANA", "BOPOMOFO"})


def _script(char: str) -> str:
    return unicodedata.name(char, "").partition(" ")[0]


def _look_alike(address: str) -> str | None:
    """How an address could pass for another one, if it could: a character that shows
    nothing; its local part or a label of its domain mixing scripts (alice with a
    Cyrillic or Armenian o), other than Latin beside Korean, Chinese or Japanese; or a
    combining mark on a Latin, Cyrillic or Greek letter, a digit or a sign, which no
    single character composes with (ALICE with a Turkish dotted capital I is, in lower
    case, an i with a dot above it). A name in one script (`josé`, `münchen`, Hangul)
    is no look-alike; one wholly in a script whose letters look Latin is not caught."""
    if SHOWS_NOTHING.search(address):
        return "holds a character that shows nothing"
    if _LATIN_LOOK_ALIKES.search(address):
        return "holds a letter drawn as another"
    local, _, domain = address.rpartition("@")
    for part in (local, *domain.split(".")):
        scripts = {_script(char) for char in part if char.isalpha()}
        if len(scripts) > 1 and not scripts <= _BESIDE_LATIN:
            return "mixes the letters of several scripts in one part"
        for before, char in itertools.pairwise(part):
            mark = unicodedata.category(char).startswith("M")
            if mark and (not before.isalpha() or _script(before) in _CONFUSABLE_SCRIPTS):
                return "puts a combining mark on a character"
    return None


def normalise_email(text: str) -> str:
    """The one form of an email address that registration stores and every lookup
    (login, the command line) searches by; ValueError when the text is no address.

    NFKC first, as for passwords: the same address typed with full-width letters or in
    decomposed form is the same account, never a look-alike second one. Then lower case,
    and the checks and form of email-validator: no display name ("Bob <bob@ex.com>"), no
    invisible characters, the domain in Unicode (xn--mnchen-3ya.de is münchen.de). An
    address that could pass for another (`_look_alike`) is refused."""
    # Checked before any work (the text may be arbitrarily long) and after (what is
    # stored must fit).
    if len(text) <= EMAIL_MAX:
        folded = unicodedata.normalize("NFKC", text.strip()).lower()
        try:
            address = validate_email(folded, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"value is not a valid email address: {exc}") from None
        # Again: the domain's Unicode form can bring back capitals (Cherokee).
        address = unicodedata.normalize("NFKC", address.lower())
        look_alike = None if address.isascii() else _look_alike(address)
        if look_alike is not None:
            raise ValueError(f"value is not a valid email address: it {look_alike}")
        if len(address) <= EMAIL_MAX:
            return address
    raise ValueError(f"an email address has at most {EMAIL_MAX} characters")


def address_of(text: str) -> str | None:
    """The normalised address a lookup searches by, or None: no account has a text that
    is no address."""
    try:
        return normalise_email(text)
    except ValueError:
        return None


Email = Annotated[
    str,
    Field(max_length=EMAIL_MAX, json_schema_extra={"format": "email"}),
    AfterValidator(normalise_email),
]
NewPassword = Annotated[
    str, Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX), AfterValidator(_strong)
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: NewPassword

    @field_validator("password")
    @classmethod
    def _not_the_address(cls, password: str, info: ValidationInfo) -> str:
        """The name in the account's own address is the first guess at its password
        (`pwtest@example.com1` for pwtest0@example.com): its words of four letters or
        more, without their digits, may not be in it."""
        local = str(info.data.get("email", "")).partition("@")[0]
        words = {re.sub(r"\d", "", word) for word in re.split(r"\W+|_", local)}
        if any(len(word) >= 4 and word in password.lower() for word in words):
            raise ValueError("password contains the name of the email address")
        return password


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
