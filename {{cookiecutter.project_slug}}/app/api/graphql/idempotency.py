"""The `idempotencyKey` argument of the GraphQL creates (the rules: app/core/idempotency.py)."""

from typing import Annotated

import strawberry
from starlette.responses import Response

from app.core.idempotency import KEY_RULE, REPLAYED_HEADER

IdempotencyKey = Annotated[
    str | None,
    strawberry.argument(
        description=(
            "Makes the create safe to retry: a new key (a UUID, say) for each new request, "
            "the same key when sending it again. A retry with the same input gets the item "
            "the first call created, and nothing is created twice; the same key with other "
            "input is refused (code idempotency_key_reused), and while the first call is "
            "still running a retry is refused (idempotency_key_in_flight). Keys are the "
            "caller's own and are kept for a configured time after their call succeeded "
            f"(24 hours by default); a call that failed frees its key. {KEY_RULE}."
        )
    ),
]


def mark_replay(response: Response | None, replayed: bool) -> None:
    """An answer that replays an earlier call carries the same header as over REST."""
    if replayed and response is not None:
        response.headers[REPLAYED_HEADER] = "true"
