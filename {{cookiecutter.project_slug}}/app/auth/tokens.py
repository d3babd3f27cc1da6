"""JWT access and refresh tokens, with sessions kept in Redis.

A login opens a session (a token family). Its refresh token is single use: each
refresh rotates it, and presenting an already-used one means it was stolen or
replayed, so every session of that user is revoked. Logging out ends the session,
and with it every access token issued for it (each request checks the session).

Each user's sessions are listed in an index that lives at least as long as the
longest of them (every login and rotation extends it), so ending them all always
finds them. A refresh token also carries the user's token version, stored with the
user in the database and raised in the transaction of a password change, an erasure
or a role change: a refresh checks it, so a committed change ends every session even
when Redis could not be reached to delete them at that moment.
"""

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args
from uuid import UUID

import jwt
import structlog
from pydantic import BaseModel

from app.core.errors import REDIS_DOWN, UnauthorizedError
from app.settings import AppSettings, AuthSettings
from app.storage.cache import Cache
from app.users.schemas import Role, User

log = structlog.get_logger(__name__)
TokenType = Literal["access", "refresh"]
REQUIRED_CLAIMS = ["iss", "sub", "exp", "iat", "jti", "type", "sid"]
# A refresh token also names the user's token version it was issued under.
REFRESH_CLAIMS = [*REQUIRED_CLAIMS, "ver"]

# Access tokens verified lately, with whom each names and when it expires: a client sends
# the same token with every request, and reading and checking it again (its signature, its
# claims) cost about 60 µs each time. Only a token that passed every check is kept, by its
# whole text; each use still checks its expiry, the one check whose answer time changes
# (whether its session still lives is Redis's to say, at every request).
VERIFIED_ACCESS_TOKENS = 1024

# Rotate only if the presented token is the session's current one: 1 rotated,
# 0 no such session, -1 an earlier token of a live session (reuse). The user's index
# (KEYS[2]) is extended with the session, so it never expires before a session it lists.
_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'jti')
if not current then return 0 end
if current ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'jti', ARGV[2], 'role', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""
# A rotation undone: the presented token current again, if the session's token is still
# the one the rotation issued (1), and nothing changed otherwise (0).
_ROTATE_BACK = """
if redis.call('HGET', KEYS[1], 'jti') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'jti', ARGV[2])
return 1
"""


def session_ended() -> UnauthorizedError:
    return UnauthorizedError("The session has ended; log in again.")


class SessionEndedError(UnauthorizedError):
    """A valid access token of a session that has ended: it names its account."""

    def __init__(self, user_id: UUID) -> None:
        super().__init__(session_ended().detail)
        self.user_id = user_id


class RefreshReuseError(UnauthorizedError):
    def __init__(self, user_id: str) -> None:
        super().__init__("Refresh token reuse detected: every session was revoked.")
        self.user_id = user_id


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 scheme name
    expires_in: int


@dataclass(frozen=True)
class Principal:
    """Who is calling: established from a valid access token of a live session."""

    user_id: UUID
    role: Role
    session_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def issuer(app: AppSettings) -> str:
    """Who issues the tokens: the service, in its environment. A token of another service
    or environment is refused, even one signed with the same key."""
    return f"{app.name}/{app.environment}"


class Tokens:
    def __init__(self, settings: AuthSettings, cache: Cache, *, issuer: str) -> None:
        self.settings = settings
        self.cache = cache
        self.issuer = issuer
        self.access_seconds = settings.access_token_minutes * 60
        self.refresh_seconds = settings.refresh_token_days * 86400
        self._rotate = cache.redis.register_script(_ROTATE)
        self._rotate_back = cache.redis.register_script(_ROTATE_BACK)
        self._verified = functools.lru_cache(maxsize=VERIFIED_ACCESS_TOKENS)(self._verify)

    def _session_key(self, session_id: str) -> str:
        return self.cache.key(f"session:{session_id}")

    def _user_sessions_key(self, user_id: str) -> str:
        return self.cache.key(f"user-sessions:{user_id}")

    def _encode(self, claims: dict[str, Any], *, kind: TokenType, seconds: int) -> str:
        now = int(time.time())
        payload = {**claims, "iss": self.issuer, "type": kind, "iat": now, "exp": now + seconds}
        return jwt.encode(
            payload, self.settings.secret_key.get_secret_value(), self.settings.algorithm
        )

    def decode(self, token: str, *, kind: TokenType) -> dict[str, Any]:
        """Verified claims, or 401: bad signature, other algorithm, another issuer,
        expired, wrong type. A token is ASCII: other text (a lone surrogate, which has no
        UTF-8 form for PyJWT to read) is refused before it is read."""
        if not token.isascii():
            raise UnauthorizedError("Invalid or expired token.")
        try:
            claims = jwt.decode(
                token,
                self.settings.secret_key.get_secret_value(),
                algorithms=[self.settings.algorithm],
                issuer=self.issuer,
                options={"require": REFRESH_CLAIMS if kind == "refresh" else REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError("Invalid or expired token.") from exc
        if claims["type"] != kind:
            raise UnauthorizedError(f"An {kind} token is required.")
        return claims

    def _pair(
        self, *, user_id: str, role: str, session_id: str, refresh_jti: str, version: int
    ) -> TokenPair:
        access = self._encode(
            {"sub": user_id, "sid": session_id, "role": role, "jti": uuid.uuid4().hex},
            kind="access",
            seconds=self.access_seconds,
        )
        refresh = self._encode(
            {"sub": user_id, "sid": session_id, "jti": refresh_jti, "ver": version},
            kind="refresh",
            seconds=self.refresh_seconds,
        )
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=self.access_seconds)

    async def open_session(self, user: User) -> TokenPair:
        session_id, jti, user_id = uuid.uuid4().hex, uuid.uuid4().hex, str(user.id)
        async with self.cache.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._session_key(session_id),
                mapping={"user": user_id, "role": user.role, "jti": jti},
            )
            pipe.expire(self._session_key(session_id), self.refresh_seconds)
            pipe.sadd(self._user_sessions_key(user_id), session_id)
            pipe.expire(self._user_sessions_key(user_id), self.refresh_seconds)
            await pipe.execute()
        return self._pair(
            user_id=user_id,
            role=user.role,
            session_id=session_id,
            refresh_jti=jti,
            version=user.token_version,
        )

    async def rotate(self, claims: dict[str, Any], *, user: User) -> TokenPair:
        """Issue the session's next pair, with the role and token version of `user` as
        the database has them now."""
        new_jti = uuid.uuid4().hex
        outcome = await self._rotate(
            keys=[self._session_key(claims["sid"]), self._user_sessions_key(claims["sub"])],
            args=[claims["jti"], new_jti, self.refresh_seconds, claims["sid"], user.role],
        )
        await self._settle(claims, outcome)
        return self._pair(
            user_id=claims["sub"],
            role=user.role,
            session_id=claims["sid"],
            refresh_jti=new_jti,
            version=user.token_version,
        )

    async def rotate_back(self, claims: dict[str, Any], pair: TokenPair) -> None:
        """Undo `rotate` (its pair was never given out): the presented token is the
        session's current one again, unless the session has moved on since."""
        issued = self.decode(pair.refresh_token, kind="refresh")["jti"]
        await self._rotate_back(
            keys=[self._session_key(claims["sid"])], args=[issued, claims["jti"]]
        )

    async def _settle(self, claims: dict[str, Any], outcome: int) -> None:
        if outcome == -1:
            # The replayed token's own session goes too, even if the index lost it.
            await self.revoke_all(claims["sub"], claims["sid"])
            raise RefreshReuseError(claims["sub"])
        if outcome == 0:
            raise session_ended()

    def subject_of_refresh(self, refresh_token: str) -> dict[str, Any]:
        return self.decode(refresh_token, kind="refresh")

    def verify(self, access_token: str) -> Principal:
        """The caller a valid access token names, before its session is checked."""
        principal, expires = self._verified(access_token)
        if expires <= time.time():
            raise UnauthorizedError("Invalid or expired token.")
        return principal

    def _verify(self, access_token: str) -> tuple[Principal, int]:
        claims = self.decode(access_token, kind="access")
        role = claims.get("role")
        try:
            user_id = UUID(claims["sub"])
        except ValueError as exc:
            raise UnauthorizedError("Invalid or expired token.") from exc
        if role not in get_args(Role):
            raise UnauthorizedError("Invalid or expired token.")
        principal = Principal(user_id=user_id, role=cast(Role, role), session_id=claims["sid"])
        # PyJWT has read it as an integer (or refused the token).
        return principal, int(claims["exp"])

    def session_key(self, principal: Principal) -> str:
        return self._session_key(principal.session_id)

    async def authenticate(self, access_token: str) -> Principal:
        """A valid access token of a live session, or 401 (SessionEndedError when the
        token is valid but its session has ended)."""
        principal = self.verify(access_token)
        if not await self._session_is_live(principal.session_id):
            raise SessionEndedError(principal.user_id)
        return principal

    async def _session_is_live(self, session_id: str) -> bool:
        try:
            return bool(await self.cache.redis.exists(self._session_key(session_id)))
        except REDIS_DOWN:
            if not self.cache.fail_open:
                raise
            # The token's signature and expiry still hold; a logout made before the
            # outage is not seen until Redis is back.
            log.warning("session_unchecked", reason="redis unavailable")
            return True

    async def end_session(self, principal: Principal) -> None:
        async with self.cache.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._session_key(principal.session_id))
            pipe.srem(self._user_sessions_key(str(principal.user_id)), principal.session_id)
            await pipe.execute()

    async def revoke_all(self, user_id: str, *session_ids: str) -> None:
        """End every session of the user, and the sessions named (known to be theirs)."""
        sessions = await self.cache.redis.smembers(self._user_sessions_key(user_id))
        keys = [self._session_key(str(session)) for session in {*sessions, *session_ids}]
        await self.cache.redis.delete(self._user_sessions_key(user_id), *keys)

    async def try_revoke_all(self, user_id: str) -> bool:
        """revoke_all after a committed change that raised the user's token version:
        if Redis cannot be reached now, the sessions end at their next refresh (the
        version no longer matches) and their access tokens within their lifetime."""
        try:
            await self.revoke_all(user_id)
        except REDIS_DOWN:
            log.warning("sessions_not_deleted", reason="redis unavailable", ended_by="version")
            return False
        return True
