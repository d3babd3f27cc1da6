"""The errors features raise. The API turns each into its one error shape, with
the `code` and `status` below; nothing else about an exception reaches a client.
"""

from typing import ClassVar


class AppError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.title
        self.headers = headers or {}
        super().__init__(self.detail)


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


class InvalidInputError(AppError):
    """Input that fails validation outside FastAPI's own request parsing."""

    status = 422
    code = "invalid_input"
    title = "Unprocessable Content"


class BadRequestError(AppError):
    status = 400
    code = "bad_request"
    title = "Bad Request"
