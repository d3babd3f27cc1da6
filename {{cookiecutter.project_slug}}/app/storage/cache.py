"""Redis, with every key under the service's prefix.

Cached models are an optimisation: while Redis is down they are neither read nor
written, and callers go to the database. A change drops the cached model and moves its
key's version on; a model read from the database after a miss is cached only if the
version is still the one the miss saw, so a read that raced a change never caches what
the change replaced or deleted.
"""

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import structlog
from pydantic import BaseModel
from redis.asyncio import Connection, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.core.breakers import CircuitBreaker, RedisBreaker, guarded_redis
from app.core.errors import REDIS_DOWN
from app.core.metrics import CACHE_LOOKUPS
from app.settings import RedisSettings

M = TypeVar("M", bound=BaseModel)
log = structlog.get_logger(__name__)
# Prepend, then trim to the newest ARGV[2]: atomic, and one reply to read where a MULTI
# pipeline has four (measured: 130 µs of CPU a push, against 200).
_PUSH_RECENT = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
"""


# For each pair of keys (value, version) and of arguments after the time to live (value,
# version the miss saw, '' for none): set the value only if the version is still that one.
_FILL = """
for i = 1, #KEYS, 2 do
  if (redis.call('GET', KEYS[i + 1]) or '') == ARGV[i + 2] then
    redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', tonumber(ARGV[1]))
  end
end
"""
# Drop the value and move the version on: fills begun before this change are refused.
_INVALIDATE = """
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
"""
# How long a version outlives the last change: far longer than a miss takes to read the
# database and fill. A version gone by then only refuses one more fill.
VERSION_SECONDS = 3600


@dataclass(frozen=True)
class Cached(Generic[M]):
    """What a lookup found: the model, or a miss with the key's version at that moment
    (None when Redis could not be asked, and nothing is to be filled)."""

    name: str
    value: M | None
    version: str | None


class TimedConnection(Connection):
    """redis-py bounds each write with asyncio.wait_for, which runs it as a task of its
    own: about 40 µs of CPU on every command here. This bounds the write by the same
    socket timeout with asyncio.timeout, in the caller's task, and fails the same way
    (the connection dropped, redis-py's TimeoutError or ConnectionError)."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if not self.socket_timeout or not self.is_connected:
            # Connecting goes redis-py's own way.
            await super().send_packed_command(command, check_health)
            return
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        writer = self._writer
        if writer is None:  # the health check found the connection gone
            await super().send_packed_command(command, check_health=False)
            return
        chunks = [command.encode()] if isinstance(command, str) else command
        chunks = [chunks] if isinstance(chunks, bytes) else chunks
        try:
            async with asyncio.timeout(self.socket_timeout):
                writer.writelines(chunks)
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}.") from exc
        except BaseException:
            # A write cut short leaves the connection in an unknown state.
            await self.disconnect(nowait=True)
            raise


class Cache:
    def __init__(self, settings: RedisSettings, breaker: CircuitBreaker | None = None) -> None:
        # While Redis's breaker is open, every command fails at once, as if Redis were down.
        self.breaker = breaker or RedisBreaker("redis")
        self.redis: Redis = guarded_redis(
            settings.url,
            self.breaker,
            # redis:// only: the URL's scheme picks the class for rediss:// and unix://.
            connection_class=TimedConnection,
            decode_responses=True,
            socket_timeout=settings.timeout_seconds,
            socket_connect_timeout=settings.timeout_seconds,
            # One quick retry covers a dropped connection; more only delays the answer
            # while Redis is down. Not a timeout: a Redis that hangs would take a second
            # socket timeout to say so again.
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        )
        self.prefix = settings.key_prefix
        self.fail_open = settings.fail_open
        self._push_recent = self.redis.register_script(_PUSH_RECENT)
        self._fill = self.redis.register_script(_FILL)
        self._invalidate = self.redis.register_script(_INVALIDATE)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def connections_in_use(self) -> int:
        """Connections taken from the pool and not yet given back."""
        # redis-py keeps no public count; this set is what its pool hands out.
        return len(self.redis.connection_pool._in_use_connections)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        await self.redis.aclose()

    def _version_key(self, name: str) -> str:
        return self.key(f"{name}:version")

    async def lookup(self, name: str, model: type[M]) -> Cached[M]:
        """The cached model, or a miss to `fill` once the model is read elsewhere."""
        (found,) = await self.lookup_many([name], model)
        return found

    async def lookup_many(self, names: Sequence[str], model: type[M]) -> list[Cached[M]]:
        """`lookup` for each name, in the same order, in one round trip."""
        if not names:
            return []
        keys = [key for name in names for key in (self.key(name), self._version_key(name))]
        try:
            found = await self.redis.mget(keys)
        except REDIS_DOWN:
            CACHE_LOOKUPS.labels(model.__name__, "unavailable").inc(len(names))
            log.warning("cache_bypassed", reason="redis unavailable")
            return [Cached(name, None, None) for name in names]
        return [
            self._cached(name, model, raw, version)
            for name, raw, version in zip(names, found[::2], found[1::2], strict=True)
        ]

    @staticmethod
    def _cached(
        name: str, model: type[M], raw: str | bytes | None, version: str | bytes | None
    ) -> Cached[M]:
        CACHE_LOOKUPS.labels(model.__name__, "miss" if raw is None else "hit").inc()
        if raw is not None:
            return Cached(name, model.model_validate_json(raw), None)
        return Cached(name, None, "" if version is None else str(version))

    async def fill(self, miss: Cached[M], value: M, *, seconds: int) -> None:
        """Cache what was read after the miss, unless the key changed since it."""
        await self.fill_many([(miss, value)], seconds=seconds)

    async def fill_many(self, fills: Sequence[tuple[Cached[M], M]], *, seconds: int) -> None:
        """`fill` for each miss and what was read after it, in one round trip."""
        keys: list[str] = []
        args: list[str | int] = [seconds]
        for miss, value in fills:
            if miss.version is not None:  # None: Redis was down at the lookup
                keys += (self.key(miss.name), self._version_key(miss.name))
                args += (value.model_dump_json(), miss.version)
        if not keys:
            return
        try:
            await self._fill(keys=keys, args=args)
        except REDIS_DOWN:
            log.warning("cache_bypassed", reason="redis unavailable")

    async def delete(self, name: str) -> None:
        """Drop a cached model after a change; if Redis is down, it may serve the old
        value once back, for at most its time to live."""
        try:
            await self._invalidate(
                keys=[self.key(name), self._version_key(name)], args=[VERSION_SECONDS]
            )
        except REDIS_DOWN:
            log.error("cache_invalidation_failed", key=name, reason="redis unavailable")

    async def push_recent(self, name: str, value: str, *, keep: int) -> None:
        """Prepend to a bounded list (newest first)."""
        await self._push_recent(keys=[self.key(name)], args=[value, keep])

    async def recent(self, name: str) -> list[str]:
        # decode_responses=True: Redis answers str, which its type hints cannot tell.
        return cast(list[str], await self.redis.lrange(self.key(name), 0, -1))
