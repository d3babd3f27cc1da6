"""JSON request bodies read strictly, as RFC 8259 has JSON: what another reader (a
proxy, a firewall, a log) could take for another request is refused.

- An object may not give one key twice. `json.loads` keeps the last value of a
  repeated key, so `{"name": "a", "name": "b"}` is taken as `{"name": "b"}`: which was
  meant is not known, and a reader that keeps the first sees another request. Refused,
  as a repeated query parameter is.
- The body is UTF-8, with no byte order mark: `json.loads` of bytes guessed UTF-16 and
  UTF-32 too, and skipped a BOM.
- `NaN`, `Infinity` and `-Infinity` are no JSON: `json.loads` took them as numbers, and
  a number past a float's range (`1e999`) as infinity.
"""

import json
import math
from typing import Any


class DuplicateKeyError(json.JSONDecodeError):
    """A JSON object gave a key twice: not JSON the service takes (FastAPI answers 422)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} is given twice", "", 0)
        self.key = key


class NotJSONError(json.JSONDecodeError):
    """A body `json.loads` would take that is no JSON (FastAPI answers 422)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)


def _constant(name: str) -> Any:
    raise NotJSONError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: a number no float holds, not infinity
        raise NotJSONError(f"the number {text[:20]} is out of range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return found


def loads(data: str | bytes) -> Any:
    """The JSON value of a body; UnicodeDecodeError if it is not UTF-8."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if text.startswith("\ufeff"):
        raise NotJSONError("a JSON body has no byte order mark")
    return json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float)


def charset(content_type: str) -> str | None:
    """The `charset` a Content-Type names, in lower case; None if it names none. Named
    twice, both, as one text that is no charset: which one a reader takes is not known."""
    parameters = (parameter.partition("=") for parameter in content_type.split(";")[1:])
    named = [
        value.strip().strip('"').lower()
        for name, _, value in parameters
        if name.strip().lower() == "charset"
    ]
    return ", ".join(named) or None
