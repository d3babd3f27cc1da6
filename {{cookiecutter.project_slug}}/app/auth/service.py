"""Logging in and out, and refreshing tokens.

Each of them leaves a security event, published like every other event."""

import contextlib
from uuid import UUID

from app.auth.passwords import PasswordHasher
from app.auth.tokens import Principal, RefreshReuseError, TokenPair, Tokens, session_ended
from app.core.errors import RateLimitedError, UnauthorizedError, with_event
from app.core.rate_limit import RateLimit, RateLimiter
from app.core.types import is_unicode
from app.events.schemas import (
    LoggedOut,
    LoginFailed,
    LoginRateLimited,
    LoginSucceeded,
    RefreshReuseDetected,
    SessionEvent,
    TokenRefreshed,
    TokenRejected,
)
from app.settings import RateLimitSettings
from app.storage.unit_of_work import Database
from app.users.schemas import address_of

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
    # Every attempt counts per source, and per target from that source: guessing is slowed
    # where it comes from, and nobody can lock the owner out from their own address.
    _enforce(await limiter.hit(f"login-ip:{client_ip}", limit=limits.login_per_ip_per_minute))
    # As registration stores it, so any form registration accepts finds the account.
    address = address_of(email)
    if address is None or not is_unicode(password):
        # No account has a text that is no address (too long, say), or a password with
        # no UTF-8 form: the same answer as for an unknown address.
        await _record(database, LoginFailed(user_id=None))
        raise UnauthorizedError(BAD_LOGIN)
    pair_key = f"login-account:{address}:{client_ip}"
    _enforce(await limiter.hit(pair_key, limit=limits.login_per_account_per_minute))
    async with database.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_email(address)
    # Same work and same answer whether the account exists or not.
    valid, rehashed = await passwords.verify_and_update(
        password, user.password_hash if user else None
    )
    if not valid or user is None:
        await _record(database, LoginFailed(user_id=user.id if user else None))
        raise UnauthorizedError(BAD_LOGIN)
    async with database.unit_of_work() as uow:
        if rehashed is not None:
            # Hashed with older parameters: stored again with the current ones, now that
            # the password is at hand.
            await uow.users.set_password(
                user.id, password_hash=rehashed, previous=user.previous_password_hashes
            )
        uow.emit(LoginSucceeded(user_id=user.id, actor_id=str(user.id)))
    await limiter.reset(pair_key)
    pair = await tokens.open_session(user)
    # A role or password change commits, then ends the sessions it finds in Redis. This
    # session was made from the read above, before the hashing time: if such a change
    # committed since, the deletion may have missed it, and its token would carry the
    # old role. Read again now that it is stored: a change committed before this read
    # is seen here; one committed after it finds the session in Redis.
    async with database.unit_of_work(read_only=True) as uow:
        current = await uow.users.get(user.id)
    if current is None or current.token_version != user.token_version:
        await tokens.revoke_all(str(user.id), tokens.verify(pair.access_token).session_id)
        raise session_ended()
    return pair


def _enforce(limit: RateLimit) -> None:
    if not limit.allowed:
        raise with_event(
            RateLimitedError(
                f"Too many requests; retry in {limit.reset_seconds} s.", headers=limit.headers()
            ),
            LoginRateLimited(user_id=None),
        )


async def refresh(*, database: Database, tokens: Tokens, refresh_token: str) -> TokenPair:
    """Rotated in Redis inside the unit of work that records it: a refresh refused there
    (reuse, a race lost to another refresh of the same token, an ended session) leaves
    no record of a refresh, and one whose record does not commit is rotated back, so the
    presented token stays usable for a retry. A refused token is recorded as one refused
    anywhere (forged, expired, an access token, of an ended session); reuse as reuse."""
    try:
        claims = tokens.subject_of_refresh(refresh_token)
    except UnauthorizedError as exc:
        raise with_event(exc, TokenRejected(user_id=None)) from None
    pair: TokenPair | None = None
    try:
        user_id = UUID(claims["sub"])
        async with database.unit_of_work() as uow:
            user = await uow.users.get(user_id)
            if user is not None and user.token_version == claims["ver"]:
                pair = await tokens.rotate(claims, user=user)
                uow.emit(TokenRefreshed(user_id=user_id, actor_id=str(user_id)))
        if pair is None:
            # A change ended every session while Redis could not be told: finish the job.
            await tokens.revoke_all(claims["sub"], claims["sid"])
            raise session_ended()
        return pair
    except RefreshReuseError as reuse:
        await _record(database, RefreshReuseDetected(user_id=UUID(reuse.user_id)))
        raise
    except UnauthorizedError as exc:
        raise with_event(exc, TokenRejected(user_id=UUID(claims["sub"]))) from None
    except BaseException:
        if pair is not None:  # rotated, and not recorded: the token made usable again
            with contextlib.suppress(Exception):  # Redis down too: the user logs in again
                await tokens.rotate_back(claims, pair)
        raise


async def logout(*, database: Database, tokens: Tokens, principal: Principal) -> None:
    await tokens.end_session(principal)
    await _record(database, LoggedOut(user_id=principal.user_id))


async def _record(database: Database, event: SessionEvent) -> None:
    async with database.unit_of_work() as uow:
        uow.emit(event)
