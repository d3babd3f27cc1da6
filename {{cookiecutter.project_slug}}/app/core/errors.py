"""The errors features raise. Transports turn them into their one error shape.

REST answers RFC 9457 problem details; GraphQL puts `code` and `status` in the
error's extensions. Nothing else about an exception ever reaches a client.
"""

from typing import ClassVar


class AppError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)


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
