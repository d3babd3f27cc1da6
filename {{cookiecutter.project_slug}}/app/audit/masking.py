"""Personal data masked in ordinary logs (a structlog processor).

Applied to every value of every log line, including exception text: email
addresses, phone numbers, Korean resident registration numbers, payment card
numbers (only Luhn-valid digit runs, so order numbers survive), bearer tokens and
JWTs, and whole fields whose name says they hold a secret.
"""

import re
from collections.abc import MutableMapping
from typing import Any

SECRET_FIELD = re.compile(r"pass(word)?|secret|token|authorization|cookie|api[_-]?key", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*")
_BEARER = re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+")
# YYMMDD, then a digit 1-8 for century and sex, then six more.
_RRN = re.compile(r"(?<!\d)\d{6}-?[1-8]\d{6}(?!\d)")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ -]?)?\(?0?\d{1,3}\)?[ -]?\d{3,4}[ -]?\d{4}(?!\d)")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[card]" if _luhn_valid(digits) else match.group()


def mask_text(text: str) -> str:
    text = _JWT.sub("[token]", text)
    text = _BEARER.sub("Bearer [token]", text)
    text = _EMAIL.sub("[email]", text)
    text = _RRN.sub("[rrn]", text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub("[phone]", text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {
            key: "[redacted]" if SECRET_FIELD.search(str(key)) else _mask(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask(item) for item in value]
    return value


def mask_personal_data(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = "[redacted]" if SECRET_FIELD.search(key) else _mask(value)
    return event
