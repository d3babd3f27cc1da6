import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator


def _as_utc(value: datetime) -> datetime:
    # Some drivers hand back naive datetimes; every stored time is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]


def _iso_8601(value: object) -> object:
    # Pydantic alone would also read a number, such as "0.5", as seconds since 1970.
    if isinstance(value, str):
        datetime.fromisoformat(value)
    return value


# A point in time given as documented: ISO 8601, with its UTC offset.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]


def _iso_text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("a time must be ISO 8601 text")
    return _iso_8601(value)


def _utc_in_range(value: datetime) -> datetime:
    # 0001-01-01T00:00+01:00 is a valid datetime with no UTC form: the drivers fail on it.
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc


# A time read from a cursor: as IsoDateTime, and one every database can compare.
CursorTime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_utc_in_range)]

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
