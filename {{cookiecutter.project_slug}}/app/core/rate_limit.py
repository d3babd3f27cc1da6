"""Sliding-window rate limits in Redis.

Each key keeps the timestamps of its recent hits in a sorted set; a hit is
allowed when fewer than `limit` fall in the last `window` seconds. The check and
the write are one Lua script, so concurrent requests cannot both take the last slot.
"""

import hashlib
import time
import uuid
from dataclasses import dataclass

from app.core.errors import RateLimitedError
from app.core.metrics import RATE_LIMITED, rate_limit_name
from app.storage.cache import Cache

WINDOW_SECONDS = 60
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

# The window of KEYS[key_index]: drop hits older than the window, take a slot if one is
# free, keep the key as long as the window.
_WINDOW = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local key = KEYS[key_index]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
    redis.call('ZADD', key, now, ARGV[4])
    count = count + 1
    allowed = 1
end
redis.call('EXPIRE', key, math.ceil(window))
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
"""
_SLIDING_WINDOW = (
    "local key_index = 1" + _WINDOW + "return {allowed, count, tostring(oldest or now)}"
)
# A request with a token: is its session (KEYS[1]) live? Then the hit counts for the user
# (KEYS[2]), otherwise for the client address (KEYS[3]). One round trip for both checks.
_SESSION_WINDOW = (
    "local live = redis.call('EXISTS', KEYS[1])\n"
    "local key_index = live == 1 and 2 or 3"
    + _WINDOW
    + "return {allowed, count, tostring(oldest or now), live}"
)


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    reset_seconds: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers

    def enforce(self) -> None:
        if not self.allowed:
            raise RateLimitedError(
                f"Too many requests; retry in {self.reset_seconds} s.", headers=self.headers()
            )


class RateLimiter:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.script = cache.redis.register_script(_SLIDING_WINDOW)
        self.session_script = cache.redis.register_script(_SESSION_WINDOW)

    def _bucket(self, key: str) -> str:
        # "name:subject": the subject (an address, an email) comes from the client, so it
        # goes into Redis hashed: a key of fixed size whatever was sent, and no personal
        # data in key names.
        name, _, subject = key.partition(":")
        digest = hashlib.blake2b(subject.encode("utf-8", "surrogatepass"), digest_size=16)
        return self.cache.key(f"ratelimit:{name}:{digest.hexdigest()}")

    async def hit(self, key: str, *, limit: int, window: int = WINDOW_SECONDS) -> RateLimit:
        now = time.time()
        allowed, count, oldest = await self.script(
            keys=[self._bucket(key)], args=[now, window, limit, f"{now}:{uuid.uuid4().hex}"]
        )
        if not allowed:
            RATE_LIMITED.labels(rate_limit_name(key)).inc()
        return _limit(limit, window, now, allowed, count, oldest)

    async def reset(self, key: str) -> None:
        await self.cache.redis.delete(self._bucket(key))

    async def hit_for_session(
        self, session_key: str, *, user: str, anonymous: str, limit: int
    ) -> tuple[bool, RateLimit]:
        """Whether the session is live, and the hit: the user's if so, else the anonymous key's."""
        now, window = time.time(), WINDOW_SECONDS
        allowed, count, oldest, live = await self.session_script(
            keys=[session_key, self._bucket(user), self._bucket(anonymous)],
            args=[now, window, limit, f"{now}:{uuid.uuid4().hex}"],
        )
        if not allowed:
            RATE_LIMITED.labels(rate_limit_name(user)).inc()
        return bool(live), _limit(limit, window, now, allowed, count, oldest)


def _limit(limit: int, window: int, now: float, allowed: int, count: int, oldest: str) -> RateLimit:
    reset = max(1, int(float(oldest) + window - now + 0.999))
    return RateLimit(
        limit=limit,
        remaining=max(0, limit - int(count)),
        reset_seconds=reset,
        allowed=bool(allowed),
    )
