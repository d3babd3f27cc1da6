"""Accounts: registration, passwords, roles."""

from collections.abc import Sequence
from uuid import UUID

import structlog

from app.auth.passwords import PasswordHasher
from app.auth.tokens import Principal, Tokens
from app.core.errors import with_event
from app.core.pagination import PAGE_MAX, Slice, Window, slice_window
from app.events.schemas import (
    PasswordChanged,
    PasswordChangeRefused,
    RoleChanged,
    UserRegistered,
    UsersListed,
)
from app.storage.unit_of_work import Database
from app.users.errors import (
    EmailTakenError,
    PasswordReusedError,
    UserNotFoundError,
    WrongPasswordError,
    admins_only,
)
from app.users.repository import UserRepository
from app.users.schemas import (
    PASSWORD_HISTORY,
    PasswordChange,
    Role,
    UserCreate,
    UserPublic,
    address_of,
)

log = structlog.get_logger(__name__)
# What registration answers, whether or not the email was free: telling them apart
# would tell anyone which addresses have an account here.
REGISTRATION_ACCEPTED = "Registration received: if the address was free, the account is ready."


async def register(
    *, database: Database, passwords: PasswordHasher, data: UserCreate
) -> UserPublic:
    password_hash = await passwords.hash(data.password)
    async with database.unit_of_work() as uow:
        user = await uow.users.add(email=data.email, password_hash=password_hash, role="user")
        uow.emit(UserRegistered(user_id=user.id))
    return user.public()


async def request_registration(
    *, database: Database, passwords: PasswordHasher, data: UserCreate
) -> None:
    """Register, answering the same whether or not the email is taken (the same work is
    done either way: the hash comes first)."""
    try:
        await register(database=database, passwords=passwords, data=data)
    except EmailTakenError:
        # A project that sends mail tells the address's owner here instead ("someone
        # tried to register with your address"); see the README.
        log.info("registration_for_existing_email")


async def get_user(*, database: Database, user_id: UUID) -> UserPublic:
    async with database.unit_of_work(read_only=True) as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFoundError
    return user.public()


async def users_by_ids(
    *, database: Database, user_ids: Sequence[UUID], principal: Principal
) -> list[UserPublic]:
    """The accounts of these ids that exist, in no order. Reading another user's is an
    administrator's (the caller checks): such reads are recorded, as a list of users is."""
    async with database.unit_of_work(read_only=True) as uow:
        users = [user.public() for user in await uow.users.by_ids(user_ids)]
    others = sum(user.id != principal.user_id for user in users)
    if others:
        async with database.unit_of_work() as uow:
            # Reading other people's personal data is itself recorded.
            uow.emit(UsersListed(count=others))
    return users


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
            raise with_event(WrongPasswordError(), PasswordChangeRefused(user_id=user.id))
        recent = [user.password_hash, *user.previous_password_hashes][:PASSWORD_HISTORY]
        for old in recent:
            if await passwords.verify(data.new_password, old):
                raise PasswordReusedError
        await uow.users.set_password(
            user.id, password_hash=await passwords.hash(data.new_password), previous=recent
        )
        # In the same transaction: once the change commits, no session can be refreshed.
        await uow.users.raise_token_version(user.id)
        uow.emit(PasswordChanged(user_id=user.id))
    await tokens.try_revoke_all(str(user_id))


async def set_role(
    *, database: Database, tokens: Tokens, user_id: UUID, role: Role, by: UUID | None
) -> UserPublic:
    """Set the role and end every session of the user, so it holds from the next request:
    the role is in each access token, and a demoted admin must not keep theirs. Setting
    the role a user already has changes nothing: no session ends, nothing is recorded.

    `by` is the admin asking, checked in the database, not only by their token: a token
    from before their own demotion still says admin until it expires if the demotion
    could not end it (Redis down), and must not let them promote themself back. None:
    no user asks (the command line)."""
    async with database.unit_of_work() as uow:
        if by is not None:
            await _still_admin(uow.users, by)
        user = await uow.users.get(user_id)
        if user is None:
            raise UserNotFoundError
        if user.role == role:
            return user.public()
        await uow.users.set_role(user_id, role)
        await uow.users.raise_token_version(user_id)
        uow.emit(RoleChanged(user_id=user_id, role=role))
    await tokens.try_revoke_all(str(user_id))
    return user.public().model_copy(update={"role": role})


async def confirm_admin(*, database: Database, user_id: UUID) -> None:
    """Refuse unless the database still says admin: an access token says so until it
    expires, even after a demotion that could not end its session (Redis down)."""
    async with database.unit_of_work(read_only=True) as uow:
        await _still_admin(uow.users, user_id)


async def _still_admin(users: UserRepository, user_id: UUID) -> None:
    user = await users.get(user_id)
    if user is None or user.role != "admin":
        raise admins_only(user_id)


async def user_by_email(*, database: Database, email: str) -> UserPublic | None:
    """The account of an address, in any form registration accepts; None for no account
    (or a text that is no address)."""
    address = address_of(email)
    if address is None:
        return None
    async with database.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_email(address)
    return user.public() if user else None


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


async def window_users(
    *, database: Database, window: Window, after: UUID | None, before: UUID | None
) -> Slice[UserPublic]:
    """A Relay window onto the users in id order (`after` and `before` are the window's
    cursors, read)."""
    async with database.unit_of_work() as uow:

        async def travel(
            *, reverse: bool, beyond: UUID | None, stop: UUID | None, limit: int
        ) -> list[UserPublic]:
            users = await uow.users.page(after=beyond, before=stop, limit=limit, descending=reverse)
            return [user.public() for user in users]

        window_slice = await slice_window(
            travel, lambda user: user.id, window, after=after, before=before
        )
        # Reading other people's personal data is itself recorded.
        uow.emit(UsersListed(count=len(window_slice.rows)))
    return window_slice
