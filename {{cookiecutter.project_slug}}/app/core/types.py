import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

# The largest whole number a database stores in its usual integer (a 64-bit bigint or
# int64): a larger one fails in the driver, not in validation.
INT64_MAX = 2**63 - 1

StorableInt = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]


def integral(value: object) -> object:
    """A number with no fraction is an integer, as JSON Schema's `integer` (which the
    OpenAPI document says) has it: `5.0`, which a client's float serialises to, is 5.
    Anything else is left to strict validation: 5.5, "5" and true are refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _utc_in_range(value: datetime) -> datetime:
    # 0001-01-01T00:00+01:00 is a valid datetime with no UTC form: the drivers fail on it.
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range once in UTC") from exc


# Some drivers hand back naive datetimes; every stored time is UTC.
UtcDateTime = Annotated[datetime, AfterValidator(_utc_in_range)]


def _iso_8601(value: object) -> object:
    # Pydantic alone would also read a number, such as "0.5", as seconds since 1970.
    if isinstance(value, str):
        datetime.fromisoformat(value)
    return value


# A point in time given as documented: ISO 8601, with its UTC offset, and one every
# database can hold and compare (its UTC form is within years 1 to 9999).
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_8601), AfterValidator(_utc_in_range)]


def _text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("a time must be ISO 8601 text")
    return value


# A time read from a cursor: as IsoDateTime, and only from text (JSON has no dates).
CursorTime = Annotated[IsoDateTime, BeforeValidator(_text)]

# A lone surrogate: a code point of a UTF-16 pair on its own, which has no UTF-8 form.
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_unicode(text: str) -> bool:
    """Whether the text can be encoded: JSON's escapes can carry a lone surrogate."""
    return _SURROGATE.search(text) is None


def is_storable(text: str) -> bool:
    """Text every supported database keeps as given: Unicode, without NUL, which
    some databases refuse."""
    return "\x00" not in text and is_unicode(text)


def _storable(text: str) -> str:
    if not is_storable(text):
        raise ValueError("text must be valid Unicode without NUL characters")
    return text


StorableText = Annotated[str, AfterValidator(_storable)]


# Characters that show nothing, or change how the text around them reads: controls, line
# and paragraph separators, and format characters (Cf: zero-width spaces and joiners,
# the soft hyphen, direction marks, embeddings, overrides and isolates: U+202E shows
# "\u202egnp.exe" as "exe.png").
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})
# Letters and symbols that are drawn blank: the Hangul fillers and the blank Braille cell.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Characters that show nothing and are no format character (those are Cf): the blank
# ones above, the combining grapheme joiner, Khmer invisible vowels, the free variation
# selectors U+180B to U+180F, and variation selectors.
SHOWS_NOTHING = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0100-\U000e01ef]"
)
# Variation selectors choose how the symbol before them is drawn (an emoji's colour):
# after anything else they show nothing.
_VARIATION_SELECTOR = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# Explicit direction controls (embeddings, overrides, isolates): they reorder what follows.
_DIRECTION_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _nfc(value: object) -> object:
    # Before the length checks: a few characters are longer in NFC.
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _visible(char: str) -> bool:
    # Not a separator, a control or format character, nor a mark alone (it combines).
    return unicodedata.category(char)[0] not in "ZCM" and char not in _BLANK


def _shows_nothing(text: str) -> bool:
    """Whether the text holds a character that shows nothing (a variation selector but
    after a symbol, as in an emoji: `bob1` and `bob1` with one are told apart by none)."""
    for found in SHOWS_NOTHING.finditer(text):
        start = found.start()
        after_symbol = start > 0 and unicodedata.category(text[start - 1]) == "So"
        if not (_VARIATION_SELECTOR.match(found.group()) and after_symbol):
            return True
    return False


def _name(text: str) -> str:
    hidden = any(unicodedata.category(char) in _HIDDEN for char in text)
    if hidden or _shows_nothing(text):
        raise ValueError("a name cannot contain invisible, control or direction characters")
    if not any(map(_visible, text)):
        raise ValueError("a name needs a visible character")
    return text


# A name people tell things apart by: kept in NFC, so one name typed in composed or
# decomposed form is one name, and refused when it shows nothing or hides characters.
Name = Annotated[StorableText, BeforeValidator(_nfc), AfterValidator(_name)]


# Control characters other than tab and line breaks (C0, DEL, C1): a terminal or a log
# viewer acts on some (ESC starts its escape sequences, BEL rings), and none is text.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _displayable(text: str) -> str:
    if _DIRECTION_CONTROLS.search(text):
        raise ValueError("text cannot contain direction overrides, embeddings or isolates")
    if _CONTROLS.search(text):
        raise ValueError("text cannot contain control characters but tabs and line breaks")
    return text


# Free text shown to people (a description): as typed, but without the controls that
# make it display in another order than it is stored, or act on the screen showing it.
DisplayText = Annotated[StorableText, AfterValidator(_displayable)]
