"""Redis, with every key under the service's prefix."""

from typing import TypeVar, cast

from pydantic import BaseModel
from redis.asyncio import Redis

from app.settings import RedisSettings

M = TypeVar("M", bound=BaseModel)


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

    async def get_model(self, name: str, model: type[M]) -> M | None:
        raw = await self.redis.get(self.key(name))
        return model.model_validate_json(raw) if raw is not None else None

    async def set_model(self, name: str, value: BaseModel, *, seconds: int) -> None:
        await self.redis.set(self.key(name), value.model_dump_json(), ex=seconds)

    async def delete(self, name: str) -> None:
        await self.redis.delete(self.key(name))

    async def push_recent(self, name: str, value: str, *, keep: int) -> None:
        """Prepend to a bounded list (newest first)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self.key(name), value)
            pipe.ltrim(self.key(name), 0, keep - 1)
            await pipe.execute()

    async def recent(self, name: str) -> list[str]:
        # decode_responses=True: Redis answers str, which its type hints cannot tell.
        return cast(list[str], await self.redis.lrange(self.key(name), 0, -1))
