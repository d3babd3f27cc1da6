from app.core.errors import BadRequestError, ConflictError, NotFoundError


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
