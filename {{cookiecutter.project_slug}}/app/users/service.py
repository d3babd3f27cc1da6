"""Accounts: registration, passwords, roles."""

from uuid import UUID

from app.auth.passwords import PasswordHasher
from app.auth.tokens import Tokens
from app.core.pagination import PAGE_MAX
from app.events.schemas import PasswordChanged, UserRegistered, UsersListed
from app.storage.unit_of_work import Database
from app.users.errors import PasswordReusedError, UserNotFoundError, WrongPasswordError
from app.users.schemas import PASSWORD_HISTORY, PasswordChange, Role, UserCreate, UserPublic


async def register(
    *, database: Database, passwords: PasswordHasher, data: UserCreate
) -> UserPublic:
    password_hash = await passwords.hash(data.password)
    async with database.unit_of_work() as uow:
        user = await uow.users.add(email=data.email, password_hash=password_hash, role="user")
        uow.emit(UserRegistered(user_id=user.id))
    return user.public()


async def get_user(*, database: Database, user_id: UUID) -> UserPublic:
    async with database.unit_of_work(read_only=True) as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFoundError
    return user.public()


async def change_password(
    *,
    database: Database,
    passwords: PasswordHasher,
    tokens: Tokens,
    user_id: UUID,
    data: PasswordChange,
) -> None:
    """Change the password and end every session: the holder must log in again."""
    async with database.unit_of_work() as uow:
        user = await uow.users.get(user_id)
        if user is None:
            raise UserNotFoundError
        if not await passwords.verify(data.current_password, user.password_hash):
            raise WrongPasswordError
        recent = [user.password_hash, *user.previous_password_hashes][:PASSWORD_HISTORY]
        for old in recent:
            if await passwords.verify(data.new_password, old):
                raise PasswordReusedError
        await uow.users.set_password(
            user.id, password_hash=await passwords.hash(data.new_password), previous=recent
        )
        uow.emit(PasswordChanged(user_id=user.id))
    await tokens.revoke_all(str(user_id))


async def set_role(*, database: Database, user_id: UUID, role: Role) -> None:
    async with database.unit_of_work() as uow:
        if await uow.users.get(user_id) is None:
            raise UserNotFoundError
        await uow.users.set_role(user_id, role)


async def list_users(
    *, database: Database, after: UUID | None, limit: int = PAGE_MAX
) -> tuple[list[UserPublic], UUID | None]:
    """A page of users and the id to continue after (None on the last page)."""
    async with database.unit_of_work() as uow:
        users = await uow.users.page(after=after, limit=limit + 1)
        page = [user.public() for user in users[:limit]]
        # Reading other people's personal data is itself recorded.
        uow.emit(UsersListed(count=len(page)))
    return page, (page[-1].id if len(users) > limit else None)
