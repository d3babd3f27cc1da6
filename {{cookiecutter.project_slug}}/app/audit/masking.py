"""Personal data masked in ordinary logs (a structlog processor).

Applied to every value of every log line, including exception text: email addresses
(quoted, percent-encoded once or twice, a domain without a dot too, spaced around the
`@`), phone numbers, Korean resident registration and passport numbers, payment card
numbers (only Luhn-valid digit runs, so order numbers survive), bank account numbers
written in groups (110-123-456789), bearer tokens, JWTs (their dots also
percent-encoded, their header left out too) and Basic credentials, `Authorization` and
`Cookie` values, secrets written as `name=value` or `name: value` in text (`=`
percent-encoded too), and whole fields whose name says they hold a secret. Numbers are
found whatever their digits (full-width, Arabic-Indic, ...) and separators (any dash, a
double one too, `.`, `_`, `/`, `*`, `~`, `|`, any space; for cards `+`, `:` and `,` too;
each also percent-encoded), also glued to a word by `_`
(`user_4111111111111111`); a card number of the usual length and a Korean mobile number
also glued to letters (`cardNo4111111111111111`).
Masking is by pattern: it catches the usual forms, not every form.
"""

import base64
import functools
import itertools
import re
import unicodedata
from collections.abc import Callable, MutableMapping
from typing import Any

from app.core.types import SHOWS_NOTHING

# Short names only as whole words: `otp`, `pw` and `pass` are secrets, `footprint` and
# `compass` not.
SECRET_FIELD = re.compile(
    r"pass(?:word|wd|code|phrase)|pwd|secret|token|authori[sz]ation|cookie|api[_-]?key"
    r"|(?:access|private)[_-]?key|credential|session[_-]?id|sessid"
    r"|(?<![a-z])(?:pass|pw|otp|pin|auth|session|sid|jwt)(?![a-z])",
    re.I,
)

# The patterns search a folded copy of the text, of the same length, in which every
# decimal digit is an ASCII digit, every dash `-`, every space (invisible ones too) ` `,
# and full-width letters and signs their ASCII selves (NFKC): one pattern then finds
# `010-1234-5678` in all the ways it can be written.
# Minus signs, long vowel marks, and the Hangul vowel ㅡ, often typed as a dash in Korean.
_OTHER_DASHES = "\u02d7\u2043\u207b\u208b\u2212\u2796\u30fc\uff70\u3161\uffda"
# The ideographic full stop (full-width and half-width), and middle dots.
_OTHER_DOTS = "\u3002\uff61\u00b7\u30fb\u2027\u2219"
_MAX_FOLDINGS = 65536  # what is not kept is worked out again, at every sight


class _Folding(dict[int, str]):
    """str.translate's table, filled as characters are first seen."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        digit = unicodedata.decimal(char, None)
        category = unicodedata.category(char)
        if digit is not None:
            folded = str(digit)
        elif category == "Pd" or char in _OTHER_DASHES:
            folded = "-"
        elif char in _OTHER_DOTS:
            folded = "."
        elif category in {"Zs", "Cf"}:
            folded = " "
        elif category[0] == "M":
            # A mark is part of the word it is on (`al\u0307ice@`): an address's start
            # was left unmasked before one.
            folded = "_"
        else:
            compatible = unicodedata.normalize("NFKC", char)
            # Only one character for one (lengths must match), and no digit: `²` is none.
            ascii_sign = len(compatible) == 1 and compatible.isascii()
            folded = compatible if ascii_sign and not compatible.isdigit() else char
        if len(self) < _MAX_FOLDINGS:
            self[code] = folded
        return folded


_FOLDING = _Folding({code: chr(code) for code in range(128)})

# `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`: the whole value, up to
# its closing quote or the end of the line, whatever the scheme (`token abc123`).
_CREDENTIAL_HEADER = re.compile(
    r"(?i)(?<![\w-])(?:[\w-]*[_-])?(?:auth(?:ori[sz]ation)?|cookie)[\"']?"
    r"[ \t]*(?:[:=]|%(?:25)*3[ad])[ \t]*(?P<quote>[\"'])?(?P<value>(?(quote)[^\"'\r\n]+|[^\r\n]+))"
)
# `password=...`, `refresh_token: ...`, `"otp": "..."` inside text: the name stays.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)(?<![\w-])(?:[\w-]*(?:pass(?:word|wd|code|phrase)|pwd|secret|token|api[_-]?key"
    r"|(?:access|private)[_-]?key|credentials?|session(?:[_-]?id)?|sessid)"
    r"|(?:[\w-]*[_-])?(?:pass|pw|otp|pin|sid|jwt))"
    r"[\"']?\s*(?:[:=]|%(?:25)*3[ad])\s*(?P<value>\"[^\"]*\"|'[^']*'|[^\s&,;\"'}]+)"
)
# What a secret assignment needs besides its `:` or `=`: a quick search for it skips the
# costly patterns above on the many values that hold none of these words.
_SECRET_WORD = re.compile(
    r"(?i)pass|pw|secret|token|key|otp|pin|credential|cookie|sess|sid|auth|jwt"
)
# A JWT's parts, its dots also percent-encoded (once or twice), and it may follow `_` or a
# percent-encoded character (`%2FeyJ...` in a path). Its header may be left out: it is the
# same for every token of a service, so the payload and signature are the token. The
# header is read to 512 characters at most: read to its end from each `eyJ` of a run of
# `_eyJ`, it took time in the square of the run's length.
_JWT_DOT = r"(?:\.|%(?:25)*2[eE])"
_JWT = re.compile(
    r"(?:(?<![A-Za-z0-9])|(?<=%[0-9A-Fa-f]{2}))eyJ[\w-]{0,512}"
    + _JWT_DOT
    + r"[\w-]+(?:"
    + _JWT_DOT
    + r"[\w-]*)?"
)
# The scheme and its value, split by spaces, or by `+` or `%20` in a URL.
_BEARER = re.compile(r"(?i)\bbearer(?:\s+|\+|%20)(?P<value>[\w.~+/=-]+)")
_BASIC = re.compile(r"(?i)\b(basic(?:\s+|\+|%20))(?P<value>[A-Za-z0-9+/]{4,}={0,2})")
# An address: its local part as written (any character RFC 5322 allows but `/`, `=` and
# `?`, which split a URL before it) or quoted; its `@` also percent-encoded, once or twice
# (%40, %2540). The local part is tried from the start of a run of the characters it may
# hold, never from within one, so each run is read once (tried from each `.` of
# `a.a.a...@`, a 16 kB path took 3 s), and what no local part starts with (a dot, a
# quote, a brace) is left out of the mask. (The domain may have no dot: root@localhost.)
# Written with a space after the `@`, or around it, the domain needs a dot: `reply to
# @example` is a mention.
_LOCAL = r"\w.!#$%&'*+^`{|}~-"
_EMAIL = re.compile(
    r"(?:\"(?:[^\"\\\r\n]|\\.)+\"|(?<![" + _LOCAL + r"])[" + _LOCAL + r"]+)"
    r"(?:(?:@|%(?:25)*40|%[eE][fF]%[bB][cC]%[aA]0)[\w-]+(?:(?:\.|%2[eE])[\w-]+)*"
    r"|(?:[ \t]@|@)[ \t][\w-]+(?:\.[\w-]+)+)"
)
# Numbers stand alone: not glued to an ASCII letter or digit, as in an id (Korean is
# written without spaces: 010-1234-5678로; `_` glues nothing: user_4111111111111111), nor
# by a hyphen to a group of four hex digits (the groups of a UUID), nor to more digits by
# a separator (a decimal number, an IP address).
_ALONE = r"(?<![0-9A-Za-z])(?<![0-9A-Fa-f]{4}-)(?<![0-9][./_*~|-])"
_END = r"(?![0-9A-Za-z]|[./_*~|-][0-9]|-[0-9A-Fa-f]{4})"
# Between the groups of a number: a dash (or two), dot, underscore, slash, `*`, `~` or `|`,
# spaced or not, or one to three spaces, tabs or line breaks; or a sign percent-encoded
# (below), which the folded text holds as NULs.
_SEP = r"(?: ?(?:--?|[./_*~|]) ?|\s{1,3}|\x00{3,})"
# Signs and spaces percent-encoded, once or more (`%20`, `%252D`, `%3D`): a path
# decoded once still holds them (`/cards/4111%201111%201111%201111`). Read as
# separators, and as no letter that a number after `passport%3D` would be glued to.
_PERCENT_SEP = re.compile(
    r"%(?:25)*(?:2[0-9A-F]|3[A-F]|40|5[B-F]|60|7[B-E]|09)"
    # And dashes and spaces in UTF-8: U+2010 to U+2015, the minus sign, a no-break and
    # an ideographic space, a full-width hyphen, the Hangul vowel ㅡ, middle dots.
    r"|%E2%80%9[0-5]|%E2%88%92|%C2%A0|%E3%80%80|%EF%BC%8D|%E3%85%A1|%C2%B7|%E3%83%BB",
    re.IGNORECASE,
)


def _number(pattern: str) -> re.Pattern[str]:
    """A number standing alone; `~` in `pattern` is a separator."""
    return re.compile(_ALONE + pattern.replace("~", _SEP) + _END)


# YYMMDD (a real date), a separator or none (`:`, `,`, `+` and `=` too), a digit 1-8 for
# century and sex, and six; anywhere but within more digits (rrn9001011234567 too).
_RRN = re.compile(
    r"(?<!\d)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:~|[:,+=])?[1-8]\d{6}(?!\d)".replace(
        "~", _SEP
    )
)
# A card's groups may also be split by `+` (a space in a form), `,` or `:`.
_CARD = re.compile(_ALONE + r"\d(?:(?:" + _SEP + r"|[+,:])?\d){12,18}" + _END)
# A card number glued to a word (cardNo4111111111111111, card4111-1111-1111-1111): only
# of the usual lengths, groups and first digits, so a long hex id is not taken for one.
_GLUED_CARD = re.compile(
    r"(?<!\d)(?:[2-69]\d{3}(?:~?\d{4}){3}|3[47]\d{2}~?\d{6}~?\d{5})(?!\d)".replace("~", _SEP)
)
# Korean passport numbers: a letter for the kind, then eight digits, or (since 2021)
# three digits, a letter and four digits (M12345678, M123A4567).
_PASSPORT = _number(r"[MSRODGmsrodg](?:\d{8}|\d{3}[A-Za-z]\d{4})")
# Bank account numbers as Korean banks group them: three or four groups, 10 to 14 digits
# (checked by `_account`). Not as one run of digits, which a timestamp in ms also is.
_ACCOUNT = _number(r"\d{2,6}(?:~\d{2,7}){2,3}")
# Phone numbers: with a country code (its `+` may be left out when the groups are split),
# an area code in brackets, groups of 2-3, 3-4 and 4 digits, or a domestic number from its
# leading 0 (not 00: zero-padded counters are none). A first group of 4 digits is no phone
# number: 2024-0001-1234 is an order number.
_PHONE = _number(
    r"(?<!\+)(?:"
    r"\+\d{1,3}~?\(?\d{1,4}\)?~?\d{3,4}~?\d{4}"
    r"|\d{1,3}~\(?\d{1,4}\)?~\d{3,4}~\d{4}"
    r"|\(\d{2,4}\)~?\d{3,4}~?\d{4}"
    r"|\d{2,3}~\d{3,4}~\d{4}"
    r"|0[1-9]\d{7,9}"
    r")"
)
# A Korean mobile number glued to a word (tel01012345678, tel010-1234-5678), also with
# the country code and no `+` (821012345678, 8210-1234-5678).
_GLUED_PHONE = re.compile(r"(?<!\d)(?:0|82~?)1[016789]~?\d{3,4}~?\d{4}(?!\d)".replace("~", _SEP))
# What the patterns of numbers need to find anything: four digits, with at most a space
# or a dash between each two (each of the numbers above holds such a run; a version, an
# IP address or the usual user agent does not).
_DIGIT_RUN = re.compile(r"\d[ -]?\d[ -]?\d[ -]?\d")
_AUTH_SCHEME = re.compile(r"(?i)bearer|basic")

# From a match, the span to replace and what with; None keeps the match as it is.
Find = Callable[[re.Match[str]], tuple[int, int, str] | None]


def _whole(label: str, group: str | int = 0) -> Find:
    def find(match: re.Match[str]) -> tuple[int, int, str]:
        start, end = match.span(group)
        return start, end, label

    return find


# What each digit adds to the Luhn sum in an even place from the right: twice itself,
# less 9 over 9.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def _luhn_valid(digits: str) -> bool:
    kept, doubled = digits[::-2], digits[-2::-2].translate(_DOUBLED)
    return (sum(map(int, kept)) + sum(map(int, doubled))) % 10 == 0


# How cards are written in groups: 4-4-4-4 (most), 4-6-5 and 4-6-4 (American Express,
# Diners), 4-4-4-4-3 and 4-4-4-3 (19 and 15 digits), 4-4-4-1 (13).
_CARD_LAYOUTS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 3), (4, 4, 4, 1)}


def _card(match: re.Match[str]) -> tuple[int, int, str] | None:
    """13 to 19 digits, Luhn-valid: all of the match, or else the longest part of it
    between spaces (`4111111111111111 12` is a card number and a count). Two groups of
    digits are none unless split by spaces alone and of six digits or more (a decimal
    number, a range, a count)."""
    found = match.group()
    words = [word.span() for word in re.finditer(r"[^ ]*\d[^ ]*", found)]
    # Each word's digits, so that the many parts of a long run (each of `1 1 1 ...` is a
    # word) are passed over on their count and checksum before any other work.
    digits_of = [re.sub(r"\D", "", found[start:end]) for start, end in words]
    ends = list(itertools.accumulate(map(len, digits_of), initial=0))
    for size in range(len(words), 0, -1):
        for first in range(len(words) - size + 1):
            if not 13 <= ends[first + size] - ends[first] <= 19:
                continue
            digits = "".join(digits_of[first : first + size])
            if not _luhn_valid(digits):
                continue
            start, end = words[first][0], words[first + size - 1][1]
            text = found[start:end]
            groups = re.findall(r"\d+", text)
            two = len(groups) == 2 and not (
                re.fullmatch(r"\d+\s+\d+", text) and min(map(len, groups)) >= 6
            )
            # `+`, `,` and `:` split a card in groups of four: in other groups, they
            # write an amount in thousands, a time, a time zone.
            other = re.search(r"[+,:]", text) and any(len(group) != 4 for group in groups)
            # Split, a card is written in its groups, or digit by digit: a timestamp or
            # a range of numbers passes the checksum one time in ten.
            lengths = tuple(map(len, groups))
            layout = len(groups) < 3 or lengths in _CARD_LAYOUTS or set(lengths) == {1}
            if not two and not other and layout:
                return match.start() + start, match.start() + end, "[card]"
    return None


def _glued_card(match: re.Match[str]) -> tuple[int, int, str] | None:
    return (*match.span(), "[card]") if _luhn_valid(re.sub(r"\D", "", match.group())) else None


def _email(match: re.Match[str]) -> tuple[int, int, str]:
    address = match.group()
    skipped = 0 if address.startswith('"') else len(address) - len(address.lstrip(".'`{}"))
    return match.start() + skipped, match.end(), "[email]"


_DATE = re.compile(r"(?:19|20)\d\d[./-](?:0?[1-9]|1[0-2])[./-](?:0?[1-9]|[12]\d|3[01])\D")


def _account(match: re.Match[str]) -> tuple[int, int, str] | None:
    """10 to 14 digits with a group of five or more (110-123-456789, 123456-78-901234),
    or NH's 3-4-4-2; not an IP address, a date or an order number (2024-0001-1234)."""
    groups = [len(group) for group in re.findall(r"\d+", match.group())]
    if _DATE.match(match.group()):
        return None  # 2026.11.30.101500: a time
    if 10 <= sum(groups) <= 14 and (max(groups) >= 5 or groups == [3, 4, 4, 2]):
        return match.start(), match.end(), "[account]"
    return None


def _basic(match: re.Match[str]) -> tuple[int, int, str] | None:
    """HTTP Basic credentials are base64 of `user:password`; other words after
    "basic" are left alone."""
    try:
        value = match.group("value")
        padded = value + "=" * (-len(value) % 4) if "=" not in value else value
        decoded = base64.b64decode(padded, validate=True).decode()
    except ValueError:  # not base64 (the pattern ignores case: a long s matches), or not text
        return None
    return (*match.span("value"), "[credentials]") if ":" in decoded else None


_REDACTED = _whole("[redacted]", "value")
_TOKEN = _whole("[token]")
_BEARER_TOKEN = _whole("[token]", "value")
_RRN_NUMBER = _whole("[rrn]")
_PHONE_NUMBER = _whole("[phone]")
_PASSPORT_NUMBER = _whole("[passport]")


def _splice(text: str, spans: list[tuple[int, int, str]]) -> str:
    pieces: list[str] = []
    last = 0
    for start, end, label in spans:
        pieces += (text[last:start], label)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _replace(pattern: re.Pattern[str], find: Find, text: str, folded: str) -> tuple[str, str]:
    """What `find` picks in each match of `pattern` in the folded text, replaced in both
    texts: the rest of the text stays as it was written."""
    first = pattern.search(folded)  # the usual text holds nothing: no list, no iterator
    if first is None:
        return text, folded
    spans = [span for match in pattern.finditer(folded, first.start()) if (span := find(match))]
    if not spans:
        return text, folded
    masked = _splice(text, spans)
    return masked, masked if folded is text else _splice(folded, spans)


# Invisible characters (zero-width spaces and joiners, the soft hyphen, direction marks,
# the combining grapheme joiner, variation selectors, fillers): taken out first, so that
# they split nothing (`alice\u200b@example.com`, `4111\u034f1111...`).
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]|"
    + SHOWS_NOTHING.pattern
)
# Text longer than this is cut before it is masked: the log cuts its values shorter
# first (app/core/logging.py), and so the cost of any text is bounded.
MAX_MASKED = 16_384


def mask_text(text: str) -> str:
    # Every line of the log passes here, so a pattern runs only on text that holds what
    # it cannot match without (a secret's name and `:` or `=`, `eyJ`, an auth scheme, `@`
    # or `%`, a run of digits): the same result, at a fraction of the cost for the usual
    # value, which holds none of them. Text in ASCII, the usual too, needs no folding.
    if len(text) > MAX_MASKED:
        text = f"{text[:MAX_MASKED]} [{len(text) - MAX_MASKED} characters cut]"
    if not text.isascii():
        text = _INVISIBLE.sub("", text)
    folded = text if text.isascii() else text.translate(_FOLDING)
    if ("=" in folded or ":" in folded or "%" in folded) and _SECRET_WORD.search(folded):
        text, folded = _replace(_CREDENTIAL_HEADER, _REDACTED, text, folded)
        text, folded = _replace(_SECRET_ASSIGNMENT, _REDACTED, text, folded)
    if "eyJ" in folded:
        text, folded = _replace(_JWT, _TOKEN, text, folded)
    if _AUTH_SCHEME.search(folded):
        text, folded = _replace(_BEARER, _BEARER_TOKEN, text, folded)
        text, folded = _replace(_BASIC, _basic, text, folded)
    if "@" in folded or "%" in folded:
        text, folded = _replace(_EMAIL, _email, text, folded)
    if "%" in folded:  # for the numbers only: the patterns above read the escapes
        folded = _PERCENT_SEP.sub(lambda match: "\x00" * len(match.group()), folded)
    if _DIGIT_RUN.search(folded):
        text, folded = _replace(_RRN, _RRN_NUMBER, text, folded)
        text, folded = _replace(_CARD, _card, text, folded)
        text, folded = _replace(_GLUED_CARD, _glued_card, text, folded)
        text, folded = _replace(_ACCOUNT, _account, text, folded)
        text, folded = _replace(_PHONE, _PHONE_NUMBER, text, folded)
        text, folded = _replace(_GLUED_PHONE, _PHONE_NUMBER, text, folded)
        text, folded = _replace(_PASSPORT, _PASSPORT_NUMBER, text, folded)
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
