"""The errors features raise. The API turns each into its one error shape, with
the `code` and `status` below; nothing else about an exception reaches a client.
"""

import re
from http import HTTPStatus
from typing import TYPE_CHECKING, ClassVar, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Redis cannot be reached. The cache is bypassed; what cannot do without Redis
# (sessions, rate limits unless they fail open) answers 503.
if TYPE_CHECKING:
    from app.events.schemas import DomainEvent

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
RETRY_AFTER_SECONDS = 5
E = TypeVar("E", bound="AppError")


class AppError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.title
        self.headers = headers or {}
        # A refusal worth a record (see app/auth/failures.py), written when it is answered.
        self.security_event: DomainEvent | None = None
        super().__init__(self.detail)


def with_event(error: E, event: "DomainEvent") -> E:
    """The error, carrying the event that records the refusal."""
    error.security_event = event
    return error


class UnauthorizedError(AppError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str = "Missing or invalid credentials.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class RateLimitedError(AppError):
    status = 429
    code = "rate_limited"
    title = "Too Many Requests"


class NotFoundError(AppError):
    status = 404
    code = "not_found"
    title = "Not Found"


class ConflictError(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class ServiceUnavailableError(AppError):
    status = 503
    code = "service_unavailable"
    title = "Service Unavailable"

    def __init__(self, dependency: str, *, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(
            f"The {dependency} is unavailable; try again shortly.",
            headers={"Retry-After": str(retry_after)},
        )
        self.dependency = dependency


class InvalidInputError(AppError):
    """Input that fails validation outside FastAPI's own request parsing."""

    status = 422
    code = "invalid_input"
    title = "Unprocessable Content"


class BadRequestError(AppError):
    status = 400
    code = "bad_request"
    title = "Bad Request"


# The error of each status the application raises itself: its code goes with any error of
# that status raised elsewhere too (a route not found is `not_found`, a body that fails
# validation `invalid_input`), so a client sees one code for one meaning.
_STATUS_CODES = {
    error.status: error.code
    for error in (
        AppError,
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        InvalidInputError,
        RateLimitedError,
        ServiceUnavailableError,
    )
}
# RFC 9110's reason phrases where Python's `HTTPStatus` (before 3.13) has older names.
_RFC9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def status_title(status: int) -> str:
    """The reason phrase of a status, as RFC 9110 names it: a problem's `title`."""
    try:
        return _RFC9110_PHRASES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def status_code(status: int) -> str:
    """The `code` of an error known only by its status (`method_not_allowed`)."""
    return _STATUS_CODES.get(status) or re.sub(r"\W+", "_", status_title(status).lower())


def as_app_error(exc: BaseException) -> AppError | None:
    """The error a client gets for an exception, or None for an unexpected one."""
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, REDIS_DOWN):
        # An open circuit breaker knows when it will try Redis again (app/core/breakers.py).
        retry_after = getattr(exc, "retry_after", RETRY_AFTER_SECONDS)
        return ServiceUnavailableError("cache and session store", retry_after=retry_after)
    return None
