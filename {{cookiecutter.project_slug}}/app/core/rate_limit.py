"""Sliding-window rate limits in Redis.

Each key keeps the timestamps of its recent hits in a sorted set; a hit is
allowed when fewer than `limit` fall in the last `window` seconds. The check and
the write are one Lua script, so concurrent requests cannot both take the last slot.
"""

import time
import uuid
from dataclasses import dataclass

from app.core.errors import RateLimitedError
from app.storage.cache import Cache

WINDOW_SECONDS = 60

_SLIDING_WINDOW = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    count = count + 1
    allowed = 1
end
redis.call('EXPIRE', KEYS[1], math.ceil(window))
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
return {allowed, count, tostring(oldest or now)}
"""


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

    async def hit(self, key: str, *, limit: int, window: int = WINDOW_SECONDS) -> RateLimit:
        now = time.time()
        allowed, count, oldest = await self.script(
            keys=[self.cache.key(f"ratelimit:{key}")],
            args=[now, window, limit, f"{now}:{uuid.uuid4().hex}"],
        )
        reset = max(1, int(float(oldest) + window - now + 0.999))
        return RateLimit(
            limit=limit,
            remaining=max(0, limit - int(count)),
            reset_seconds=reset,
            allowed=bool(allowed),
        )
