"""Redis, with every key under the service's prefix."""

from typing import cast

from redis.asyncio import Redis

from app.settings import RedisSettings


class Cache:
    def __init__(self, settings: RedisSettings) -> None:
        self.redis: Redis = Redis.from_url(settings.url, decode_responses=True)
        self.prefix = settings.key_prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose()

    async def push_recent(self, name: str, value: str, *, keep: int) -> None:
        """Prepend to a bounded list (newest first)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self.key(name), value)
            pipe.ltrim(self.key(name), 0, keep - 1)
            await pipe.execute()

    async def recent(self, name: str) -> list[str]:
        # decode_responses=True: Redis answers str, which its type hints cannot tell.
        return cast(list[str], await self.redis.lrange(self.key(name), 0, -1))
