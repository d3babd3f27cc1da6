"""Logging in and out, and refreshing tokens.

Each of them leaves a security event, published like every other event."""

from uuid import UUID

from app.auth.passwords import PasswordHasher
from app.auth.tokens import Principal, RefreshReuseError, TokenPair, Tokens
from app.core.errors import UnauthorizedError
from app.core.rate_limit import RateLimiter
from app.core.types import is_storable, is_unicode
from app.events.schemas import (
    LoggedOut,
    LoginFailed,
    LoginSucceeded,
    RefreshReuseDetected,
    SessionEvent,
    TokenRefreshed,
)
from app.settings import RateLimitSettings
from app.storage.unit_of_work import Database

BAD_LOGIN = "Incorrect email or password."


async def login(
    *,
    database: Database,
    passwords: PasswordHasher,
    tokens: Tokens,
    limiter: RateLimiter,
    limits: RateLimitSettings,
    email: str,
    password: str,
    client_ip: str,
) -> TokenPair:
    email = email.strip().lower()
    # Both limits count every attempt: guessing is slowed per source and per target.
    (await limiter.hit(f"login-ip:{client_ip}", limit=limits.login_per_ip_per_minute)).enforce()
    if not (is_storable(email) and is_unicode(password)):
        # No account has an email no database can hold, or a password with no UTF-8 form.
        await _record(database, LoginFailed(user_id=None))
        raise UnauthorizedError(BAD_LOGIN)
    (
        await limiter.hit(f"login-account:{email}", limit=limits.login_per_account_per_minute)
    ).enforce()
    async with database.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_email(email)
    # Same work and same answer whether the account exists or not.
    if not await passwords.verify(password, user.password_hash if user else None) or user is None:
        await _record(database, LoginFailed(user_id=user.id if user else None))
        raise UnauthorizedError(BAD_LOGIN)
    await _record(database, LoginSucceeded(user_id=user.id, actor_id=str(user.id)))
    return await tokens.open_session(user.public())


async def refresh(*, database: Database, tokens: Tokens, refresh_token: str) -> TokenPair:
    try:
        pair = await tokens.rotate(refresh_token)
    except RefreshReuseError as reuse:
        await _record(database, RefreshReuseDetected(user_id=UUID(reuse.user_id)))
        raise
    user_id = tokens.subject_of_refresh(pair.refresh_token)["sub"]
    await _record(database, TokenRefreshed(user_id=UUID(user_id), actor_id=user_id))
    return pair


async def logout(*, database: Database, tokens: Tokens, principal: Principal) -> None:
    await tokens.end_session(principal)
    await _record(database, LoggedOut(user_id=principal.user_id))


async def _record(database: Database, event: SessionEvent) -> None:
    async with database.unit_of_work() as uow:
        uow.emit(event)
