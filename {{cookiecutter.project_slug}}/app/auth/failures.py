"""Records of refused and failed actions, without letting a flood fill them.

A wrong current password, another user's item, an administrators' operation called
by a user, an invalid token, a login refused by a rate limit: each error carries the
event that records it (`with_event`), and the API writes it when it answers. The
first `RATE_LIMIT_FAILURE_RECORDS_PER_IP_PER_MINUTE` of one caller in a minute are
written (as events, kept in every record the service keeps of them): of an account for
a signed-in caller, of an address for an anonymous one. The rest are only counted in
`security_failures_unrecorded_total`, so anonymous traffic cannot grow the records or
the outbox without bound, nor spend a signed-in user's allowance. Writing a record
never changes the answer.
"""

import structlog
from prometheus_client import Counter

from app.core.errors import AppError
from app.core.rate_limit import RateLimiter
from app.storage.unit_of_work import Database

log = structlog.get_logger(__name__)
UNRECORDED = Counter(
    "security_failures_unrecorded",
    "Refused or failed actions counted but not recorded: their caller was over its allowance.",
    ["event_type"],
)


async def record_failure(
    error: AppError, *, database: Database, limiter: RateLimiter, limit: int, caller: str
) -> bool:
    """Write the error's event if its caller (an account, or an anonymous caller's
    address) is within its allowance; True if written."""
    event = error.security_event
    if event is None:
        return False
    try:
        allowance = await limiter.hit(f"failure-records:{caller}", limit=limit)
        if allowance.allowed:
            async with database.unit_of_work() as uow:
                uow.emit(event)
            return True
    except Exception as exc:  # a record lost to an outage must not change the answer
        log.warning("failure_not_recorded", event_type=event.event_type, reason=type(exc).__name__)
    UNRECORDED.labels(event_type=event.event_type).inc()
    return False
