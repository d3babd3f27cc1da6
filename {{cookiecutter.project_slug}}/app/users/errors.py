from uuid import UUID

from app.core.errors import (
    AppError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    with_event,
)
from app.events.schemas import AdminAccessDenied


class EmailTakenError(ConflictError):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("An account with this email already exists.")


class UserNotFoundError(NotFoundError):
    code = "user_not_found"

    def __init__(self) -> None:
        super().__init__("No user has this id.")


class WrongPasswordError(BadRequestError):
    code = "wrong_password"

    def __init__(self) -> None:
        super().__init__("The current password is not correct.")


class PasswordReusedError(BadRequestError):
    code = "password_reused"

    def __init__(self) -> None:
        super().__init__("The new password must differ from the last passwords used.")


def admins_only(user_id: UUID) -> AppError:
    """The refusal of an administrators' operation to a user who is not one, recorded."""
    return with_event(ForbiddenError("Administrators only."), AdminAccessDenied(user_id=user_id))
