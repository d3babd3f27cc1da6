"""The errors features raise. The API turns each into its one error shape, with
the `code` and `status` below; nothing else about an exception reaches a client.
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
