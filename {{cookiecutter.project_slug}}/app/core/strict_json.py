"""JSON request bodies read strictly: an object may not give one key twice.

`json.loads` keeps the last value of a repeated key, so `{"name": "a", "name": "b"}` is
taken as `{"name": "b"}`: which was meant is not known, and a proxy or a log that reads
the first value sees another request than the service does. Refused, as a repeated
query parameter is.
"""

import json
from typing import Any


class DuplicateKeyError(json.JSONDecodeError):
    """A JSON object gave a key twice: not JSON the service takes (FastAPI answers 422)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} is given twice", "", 0)
        self.key = key


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
    return json.loads(data, object_pairs_hook=_object)
