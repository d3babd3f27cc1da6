"""Logging in and out, and refreshing tokens."""

from app.auth.passwords import PasswordHasher
from app.auth.tokens import Principal, TokenPair, Tokens
from app.core.errors import UnauthorizedError
from app.core.rate_limit import RateLimiter
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
    (
        await limiter.hit(f"login-account:{email}", limit=limits.login_per_account_per_minute)
    ).enforce()
    async with database.unit_of_work() as uow:
        user = await uow.users.by_email(email)
    # Same work and same answer whether the account exists or not.
    if not await passwords.verify(password, user.password_hash if user else None) or user is None:
        raise UnauthorizedError(BAD_LOGIN)
    return await tokens.open_session(user.public())


async def refresh(*, tokens: Tokens, refresh_token: str) -> TokenPair:
    return await tokens.rotate(refresh_token)


async def logout(*, tokens: Tokens, principal: Principal) -> None:
    await tokens.end_session(principal)
