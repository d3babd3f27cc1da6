"""The `Idempotency-Key` header of the REST API's creates (the rules: app/core/idempotency.py)."""

from typing import Annotated, Any, TypeVar

from fastapi import Header, Response
from pydantic import BaseModel

from app.core.idempotency import (
    HEADER,
    KEY_MAX_LENGTH,
    KEY_MIN_LENGTH,
    KEY_PATTERN,
    KEY_RULE,
    REPLAYED_HEADER,
    Outcome,
)

M = TypeVar("M", bound=BaseModel)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        min_length=KEY_MIN_LENGTH,
        max_length=KEY_MAX_LENGTH,
        pattern=KEY_PATTERN,
        description=(
            "Makes the create safe to retry: a new key (a UUID, say) for each new request, "
            "the same key when sending that request again. A retry with the same body gets "
            f"the first answer again, marked `{REPLAYED_HEADER}: true`, and nothing is "
            "created twice; the same key with another body is refused (422), and while the "
            "first request is still running a retry gets 409. Keys are the caller's own and "
            "are kept for a configured time after their request succeeded (24 hours by "
            f"default); a request that failed frees its key. {KEY_RULE}."
        ),
    ),
]


def replayable(
    status: int, description: str, headers: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The success response of a create that takes the header: with the replay header,
    and `headers`."""
    header = {
        "description": "`true` when this is the answer to an earlier request with the same key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
    return {
        status: {
            "description": description,
            "headers": {REPLAYED_HEADER: header, **(headers or {})},
        }
    }


def answer(response: Response, outcome: Outcome[M]) -> M:
    """The first answer's status, and the replay header when it is one."""
    response.status_code = outcome.status
    if outcome.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return outcome.value
