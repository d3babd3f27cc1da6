"""Redis connections write in the caller's task (no task per command), still bounded by
the socket timeout."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.settings import Settings
from app.storage.cache import Cache, TimedConnection
from tests.conftest import override
from tests.faults import FaultProxy


@contextlib.asynccontextmanager
async def stalling_proxy(host: str, port: int, stalled: asyncio.Event) -> AsyncIterator[int]:
    """A loopback proxy to the real Redis that stops reading from its client once
    `stalled` is set, as a hung server or a full network path does."""
    pipes: set[asyncio.Future[Any]] = set()

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, stall: bool) -> None:
        while data := await source.read(65536):
            if stall and stalled.is_set():
                await asyncio.Event().wait()  # never reads again
            sink.write(data)
            await sink.drain()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        task = asyncio.ensure_future(
            asyncio.gather(
                pipe(reader, upstream_writer, True), pipe(upstream_reader, writer, False)
            )
        )
        pipes.add(task)
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await task
        for stream in (writer, upstream_writer):
            stream.transport.abort()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for task in pipes:
            task.cancel()
        server.close()


async def test_the_cache_uses_the_timed_connection(settings: Settings) -> None:
    cache = Cache(settings.redis)
    assert cache.redis.connection_pool.connection_class is TimedConnection
    await cache.close()


async def test_a_write_redis_does_not_take_fails_after_the_socket_timeout(
    settings: Settings,
) -> None:
    redis = urlsplit(settings.redis.url)
    stalled = asyncio.Event()
    async with stalling_proxy(redis.hostname or "127.0.0.1", redis.port or 6379, stalled) as port:
        connection = TimedConnection(host="127.0.0.1", port=port, socket_timeout=0.3)
        await connection.send_command("PING")
        assert await connection.read_response() in ("PONG", b"PONG")
        stalled.set()
        # Far more than the socket buffers on the way hold: the write has to wait.
        with pytest.raises(RedisTimeoutError):
            await connection.send_command("SET", "stalled", b"x" * (64 << 20))
        assert not connection.is_connected


async def test_a_command_a_hung_redis_does_not_answer_is_not_tried_again(
    settings: Settings,
) -> None:
    """One socket timeout a command while Redis hangs, not one per try: only a dropped
    connection is worth the quick second try (a hang would just wait again)."""
    redis = urlsplit(settings.redis.url)
    proxy = await FaultProxy(redis.hostname or "127.0.0.1", redis.port or 6379).start()
    url = f"redis://127.0.0.1:{proxy.port}{redis.path}"
    cache = Cache(override(settings, "redis", url=url, timeout_seconds=0.3).redis)
    try:
        assert await cache.ping()
        await proxy.freeze()
        with pytest.raises(RedisTimeoutError):
            await cache.redis.get("anything")
        # A second try would have connected again, to a server that never answers.
        assert proxy.stalled == 0
    finally:
        await cache.close()
        await proxy.close()
