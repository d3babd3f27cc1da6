"""Personal data masked in ordinary logs (a structlog processor).

Applied to every value of every log line, including exception text: email
addresses (percent-encoded too), phone numbers, Korean resident registration
numbers, payment card numbers (only Luhn-valid digit runs, so order numbers
survive), bearer tokens, JWTs and Basic credentials, secrets written as
`name=value` or `name: value` in text, and whole fields whose name says they hold
a secret. Masking is by pattern: it catches the usual forms, not every form.
"""

import base64
import functools
import re
from collections.abc import MutableMapping
from typing import Any

# Short names only as whole words: `otp` and `pass` are secrets, `footprint` and `compass` not.
SECRET_FIELD = re.compile(
    r"password|passwd|passphrase|pwd|secret|token|authorization|cookie|api[_-]?key|credential"
    r"|(?<![a-z])(?:pass|otp)(?![a-z])",
    re.I,
)
# An address, also percent-encoded as in a logged URL: user%40example.com.
_EMAIL = re.compile(r"[\w.+%-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+", re.I)
_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*")
_BEARER = re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+")
_BASIC = re.compile(r"(?i)\b(basic\s+)([A-Za-z0-9+/]{4,}={0,2})")
# `password=...`, `refresh_token: ...`, `"otp": "..."` inside text: the name stays.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])([\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|otp"
    r"|credentials?)[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s&,;\"'}]+)"
)
# What a secret assignment needs besides its `:` or `=`: a quick search for it skips the
# costly pattern above on the many values that hold none of these words.
_SECRET_WORD = re.compile(r"(?i)password|passwd|pwd|secret|token|api[_-]?key|otp|credential")
# YYMMDD, a hyphen, dash or space (or none), then a digit 1-8 for century and sex, and six.
_RRN = re.compile(r"(?<!\d)\d{6}(?:\s?[-\u2010-\u2015\u2212]\s?|\s)?[1-8]\d{6}(?!\d)")
# Not inside a longer token: the digit groups of a UUID are no card.
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
# Phone numbers: with a country code, an area code in brackets, groups of 2-3, 3-4 and 4
# digits split by spaces, dots or hyphens, or a domestic number from its leading 0. A
# first group of 4 digits is no phone number: 2024-0001-1234 is an order number.
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?[ .-]?\d{3,4}[ .-]?\d{4}"
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{4}"
    r"|\d{2,3}[ .-]\d{3,4}[ .-]\d{4}"
    r"|0\d{8,10}"
    r")(?![\w-])"
)


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


def _basic(match: re.Match[str]) -> str:
    """HTTP Basic credentials are base64 of `user:password`; other words after
    "basic" are left alone."""
    try:
        decoded = base64.b64decode(match.group(2), validate=True).decode()
    except ValueError:  # not base64 (the pattern ignores case: a long s matches), or not text
        return match.group()
    return f"{match.group(1)}[credentials]" if ":" in decoded else match.group()


# What the patterns of credentials and of numbers need to find anything: the name of an
# HTTP auth scheme; four digits, with at most a space or hyphen between each two (a phone
# number, a resident registration number and a card number each hold such a run).
_AUTH_SCHEME = re.compile(r"(?i)bearer|basic")
_DIGIT_RUN = re.compile(r"\d[ -]?\d[ -]?\d[ -]?\d")


def mask_text(text: str) -> str:
    # Every line of the log passes here, so a pattern runs only on text that holds what
    # it cannot match without (`eyJ`, an auth scheme, `:` or `=` and a secret's name, `@`,
    # a run of digits): the same result, at a fraction of the cost for the usual value,
    # which holds none of them.
    if "eyJ" in text:
        text = _JWT.sub("[token]", text)
    if _AUTH_SCHEME.search(text):
        text = _BEARER.sub("Bearer [token]", text)
        text = _BASIC.sub(_basic, text)
    if ("=" in text or ":" in text) and _SECRET_WORD.search(text):
        text = _SECRET_ASSIGNMENT.sub(r"\1[redacted]", text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub("[email]", text)
    if _DIGIT_RUN.search(text):
        text = _RRN.sub("[rrn]", text)
        text = _CARD.sub(_card, text)
        text = _PHONE.sub("[phone]", text)
    return text


@functools.lru_cache(maxsize=1024)
def _secret_field(name: str) -> bool:
    # The same few field names come with every line.
    return SECRET_FIELD.search(name) is not None


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {
            key: "[redacted]" if _secret_field(str(key)) else _mask(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask(item) for item in value]
    return value


def mask_personal_data(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = "[redacted]" if _secret_field(key) else _mask(value)
    return event
