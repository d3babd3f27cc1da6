"""One form of an email address wherever one comes in, and names that show what they are."""

import unicodedata
import uuid
from collections.abc import Callable

import pytest
from httpx import AsyncClient
from pydantic import ValidationError

from app.core.errors import UnauthorizedError
from app.items.schemas import NAME_MAX, ItemCreate, ItemUpdate
from app.services import Services
from app.users import service as user_service
from app.users.errors import EmailTakenError
from app.users.schemas import UserCreate, normalise_email
from tests.actions import login, new_request_id, register
from tests.api import create_item, refusal, succeeded
from tests.conftest import PASSWORD, Account
from tests.test_auth import login as login_directly


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def full_width(text: str) -> str:
    """As an East Asian input method types ASCII letters and digits."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def fresh() -> str:
    return uuid.uuid4().hex[:10]


# Spellings of one address: (the form given, the other forms of it).
FORMS: dict[str, Callable[[str], tuple[str, list[str]]]] = {
    "decomposed": lambda u: (nfd(f"josé{u}@example.com"), [f"josé{u}@example.com"]),
    "composed": lambda u: (f"josé{u}@example.com", [nfd(f"josé{u}@example.com")]),
    "punycode domain": lambda u: (f"pc{u}@xn--mnchen-3ya.de", [f"pc{u}@münchen.de"]),
    "unicode domain": lambda u: (f"pc{u}@münchen.de", [f"pc{u}@xn--mnchen-3ya.de"]),
    "full width": lambda u: (full_width(f"full{u}@example.com"), [f"full{u}@example.com"]),
    "case and spaces": lambda u: (f" Mixed{u}@EXAMPLE.com ", [f"mixed{u}@example.com"]),
}


@pytest.mark.parametrize("form", FORMS)
async def test_an_email_logs_in_in_the_form_it_was_registered_in_and_in_any_other(
    client: AsyncClient, form: str
) -> None:
    given, others = FORMS[form](fresh())
    assert await register(client, new_request_id(), given, PASSWORD)
    for typed in (given, *others):
        assert await login(client, new_request_id(), typed, PASSWORD), typed


@pytest.mark.parametrize("form", FORMS)
async def test_equivalent_forms_of_an_email_are_one_account(services: Services, form: str) -> None:
    given, others = FORMS[form](fresh())
    data = UserCreate(email=given, password=PASSWORD)
    user = await user_service.register(
        database=services.database, passwords=services.passwords, data=data
    )
    for other in others:
        with pytest.raises(EmailTakenError):
            await user_service.register(
                database=services.database,
                passwords=services.passwords,
                data=UserCreate(email=other, password=PASSWORD),
            )
        # The lookup the command line makes finds it by any form too.
        found = await user_service.user_by_email(database=services.database, email=other)
        assert found is not None
        assert found.id == user.id


NOT_ADDRESSES = [
    "Bob Two <bob2@example.com>",
    '"Bob" <bob@example.com>',
    "<bob@example.com>",
    "x" * 250 + "@example.com",
    "a\u200b@example.com",
    "\u202ea@example.com",
    "a\x00@example.com",
    "a\ud800@example.com",
]


# Addresses that pass for another: the Turkish dotted capital I, which lower-cases to an
# `i` with a combining dot; a Cyrillic a or Greek o among Latin letters, in the local
# part or a label of the domain; a stroke over a letter. Each was an account of its own.
LOOK_ALIKES = [
    "AL\u0130CE@example.com",
    "\u0430lice@example.com",
    "alice@ex\u0430mple.com",
    "b\u03bfb@example.com",
    "bo\u0336b@example.com",
    # Characters that show nothing; Armenian and Cherokee letters among Latin ones; a
    # mark on a digit.
    "ali\u034fce@example.com",
    "alice\ufe0f@example.com",
    "alice\u3164@example.com",
    "b\u0585b@example.com",
    "bob@g\u0585\u0585gle.com",
    "\uab7alice@example.com",
    "alice1\u0307@example.com",
    # The blank Braille cell; Latin letters drawn as ASCII ones (dotless i, a small
    # capital, the Latin alpha).
    "alice\u2800@example.com",
    "al\u0131ce@example.com",
    "\u1d00lice@example.com",
    "\u0251lice@example.com",
]
# Names in one script, and marks that compose with their letter: accounts like any.
NOT_LOOK_ALIKES = [
    "jos\u00e9@example.com",
    "jose\u0301@example.com",
    "\ud64d\uae38\ub3d9@example.kr",
    "kim@\uc0bc\uc131shop.kr",
]


def test_an_address_in_one_script_is_no_look_alike() -> None:
    for text in NOT_LOOK_ALIKES:
        assert UserCreate(email=text, password=PASSWORD).email.startswith(text[:2])


@pytest.mark.parametrize("text", NOT_ADDRESSES + LOOK_ALIKES)
async def test_a_text_that_is_no_bare_address_is_refused_everywhere(
    services: Services, text: str
) -> None:
    with pytest.raises(ValidationError):
        UserCreate(email=text, password=PASSWORD)
    with pytest.raises(UnauthorizedError):
        await login_directly(services, text, PASSWORD)
    assert await user_service.user_by_email(database=services.database, email=text) is None


async def test_a_display_name_form_is_refused_at_registration_over_the_api(
    client: AsyncClient,
) -> None:
    text = f"Bob Two <bob{fresh()}@example.com>"
    assert await register(client, new_request_id(), text, PASSWORD) is None


@pytest.mark.parametrize("form", FORMS)
def test_the_stored_form_of_an_email_is_stable(form: str) -> None:
    given, others = FORMS[form](fresh())
    stored = normalise_email(given)
    assert normalise_email(stored) == stored
    assert unicodedata.is_normalized("NFKC", stored)
    assert stored == stored.lower()
    assert {normalise_email(other) for other in others} == {stored}


async def test_an_item_name_is_kept_in_nfc_so_either_form_is_one_name(
    client: AsyncClient, account: Account
) -> None:
    name = f"café-{fresh()}"
    created = await create_item(client, account, nfd(name))
    assert succeeded(created), created.text
    assert refusal(await create_item(client, account, name))[0] == 409
    assert ItemCreate(name=nfd(name)).name == name


HIDDEN = [
    "\u200b",  # a zero-width space alone
    "\u200b\u200b\u200b",
    "\u3164",  # a Hangul filler: a letter drawn blank
    "\u2800",  # the blank Braille cell
    "\u0301",  # a combining mark with nothing to combine with
    "\u202egnp.exe",  # shows as "exe.png"
    "a\u2066b\u2069",
    "a\u200bb",
    "a\u00adb",  # a soft hyphen
    "\ufeffname",
    "tab\there",
    "line\u2028separator",
    # Beside a name of the same letters, one with a character that shows nothing: a
    # variation selector after a digit, the combining grapheme joiner, a filler.
    "bob1\ufe0f",
    "bo\u034fb",
    "bob\u3164",
]


def test_an_emojis_variation_selector_is_part_of_a_name() -> None:
    assert ItemUpdate(name="Coffee \u2615\ufe0f").name == "Coffee \u2615\ufe0f"


@pytest.mark.parametrize("name", HIDDEN)
async def test_an_item_name_that_hides_characters_or_shows_nothing_is_a_422(
    client: AsyncClient, account: Account, name: str
) -> None:
    assert refusal(await create_item(client, account, name))[0] == 422
    with pytest.raises(ValidationError):
        ItemUpdate(name=name)


async def test_an_item_name_over_the_limit_once_in_nfc_is_a_422(
    client: AsyncClient, account: Account
) -> None:
    # U+0958 is two code points in NFC: 60 of them are 120.
    name = "\u0958" * 60
    assert len(unicodedata.normalize("NFC", name)) > NAME_MAX
    assert refusal(await create_item(client, account, name))[0] == 422


def test_a_description_keeps_ordinary_text_but_no_direction_override_or_control() -> None:
    family = "\U0001f468\u200d\U0001f469"
    text = f"two lines,\nan arabic mark \u200f, a soft\u00adhyphen and a family {family}"
    assert ItemCreate(name="n", description=text).description == text
    assert ItemCreate(name="n", description="a\ttab, a\r\nline").description == "a\ttab, a\r\nline"
    # Direction controls, and control characters a terminal acts on (ESC, BEL, C1's CSI).
    for control in ("\u202e", "\u202a", "\u2066", "\u2069", "\x1b[2J", "\x07", "\x7f", "\x9b"):
        with pytest.raises(ValidationError):
            ItemCreate(name="n", description=f"read {control}this")
        with pytest.raises(ValidationError):
            ItemUpdate(description=f"read {control}this")
