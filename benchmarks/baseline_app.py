"""The bare baseline: the same work as the rendered service, with nothing in between.

A minimal Starlette app straight on the drivers (asyncpg or PyMongo, redis-py), no
validation, auth, rate limit, logging or metrics. It is served by uvicorn with the
rendered project's own interpreter, so both sides use the very same uvicorn, uvloop,
httptools and driver versions. Configured by environment:

BASELINE_DATABASE   postgres | mongodb
BASELINE_DB_URL     postgresql://... (asyncpg form) or mongodb://.../dbname
BASELINE_REDIS_URL  redis://...
BASELINE_OWNER_ID   owner of the items it creates
BASELINE_AUTH_SECRET    the service's AUTH_SECRET_KEY, for the checked routes
BASELINE_SESSION_PREFIX the service's Redis key prefix + "session:"

Routes: GET /items/{id} (cache-aside in Redis, as the service: GET, and on a miss the
row, SET with a TTL), GET /items?status=&limit= (the indexed list query, over the
caller's own items as the service lists them), POST /items.

The same under /checked/: first the checks the service makes on every request, done
bare: the bearer token verified with PyJWT (same secret, algorithm and required claims),
then one Redis script that finds the token's session live and counts the hit in a
sliding window of a minute, as the service's rate limit does. The work left between
the checked baseline and the service is the framework's and the app's own.

benchmarks/fastapi_floor.py does the checked routes' work written as a FastAPI app, with
the functions here (verify, cached_item, select_items, insert_item and the lifespan).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import jwt
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DATABASE = os.environ.get("BASELINE_DATABASE", "postgres")
DB_URL = os.environ.get("BASELINE_DB_URL", "")
REDIS_URL = os.environ.get("BASELINE_REDIS_URL", "redis://127.0.0.1:6379/0")
OWNER_ID = os.environ.get("BASELINE_OWNER_ID", str(uuid.uuid4()))
AUTH_SECRET = os.environ.get("BASELINE_AUTH_SECRET", "")
SESSION_PREFIX = os.environ.get("BASELINE_SESSION_PREFIX", "")
REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "type", "sid"]
# Session live? Then drop the hits older than the window, add this one, count them.
CHECK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('EXPIRE', KEYS[2], 60)
return redis.call('ZCARD', KEYS[2])
"""
PREFIX = "baseline:item:"
TTL = 300
COLUMNS = "id, owner_id, name, description, price_cents, status, created_at, updated_at"
_state: dict[str, Any] = {}


def _json(payload: object, status: int = 200) -> Response:
    body = json.dumps(payload, default=str, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def _document(document: dict[str, Any]) -> dict[str, Any]:
    document.pop("_id", None)
    return document


async def _fetch_one(item_id: str) -> dict[str, Any] | None:
    if DATABASE == "postgres":
        row = await _state["pool"].fetchrow(
            f"SELECT {COLUMNS} FROM items WHERE id = $1",
            uuid.UUID(item_id),
        )
        return dict(row) if row else None
    document = await _state["items"].find_one({"id": item_id})
    return _document(document) if document else None


async def cached_item(item_id: str) -> bytes | None:
    """The item's JSON: from Redis, or on a miss from the database (then cached); None if
    there is no such item."""
    redis: Redis = _state["redis"]
    raw: bytes | None = await redis.get(PREFIX + item_id)
    if raw is None:
        item = await _fetch_one(item_id)
        if item is None:
            return None
        raw = json.dumps(item, default=str, separators=(",", ":")).encode()
        await redis.set(PREFIX + item_id, raw, ex=TTL)
    return raw


async def get_item(request: Request) -> Response:
    raw = await cached_item(request.path_params["item_id"])
    if raw is None:
        return _json({"detail": "not found"}, 404)
    return Response(raw, media_type="application/json")


async def select_items(status: str, limit: int) -> list[dict[str, Any]]:
    """The owner's newest items of this status (the service's indexed list query)."""
    if DATABASE == "postgres":
        rows = await _state["pool"].fetch(
            f"SELECT {COLUMNS} FROM items WHERE owner_id = $1 AND status = $2 "
            "ORDER BY created_at DESC, id DESC LIMIT $3",
            uuid.UUID(OWNER_ID),
            status,
            limit,
        )
        return [dict(row) for row in rows]
    cursor = (
        _state["items"]
        .find({"owner_id": OWNER_ID, "status": status})
        .sort([("created_at", -1), ("id", -1)])
        .limit(limit)
    )
    return [_document(document) async for document in cursor]


async def list_items(request: Request) -> Response:
    status = request.query_params.get("status", "active")
    limit = int(request.query_params.get("limit", "20"))
    return _json({"data": await select_items(status, limit)})


async def insert_item(body: dict[str, Any]) -> dict[str, Any]:
    """A new item of the owner's from a create request's fields; the row as stored."""
    now = datetime.now(UTC)
    values = {
        "id": uuid.uuid4(),
        "owner_id": uuid.UUID(OWNER_ID),
        "name": body["name"],
        "description": body.get("description", ""),
        "price_cents": body.get("price_cents", 0),
        "status": body.get("status", "draft"),
        "created_at": now,
        "updated_at": now,
    }
    if DATABASE == "postgres":
        row = await _state["pool"].fetchrow(
            f"INSERT INTO items ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            f"RETURNING {COLUMNS}",
            *values.values(),
        )
        return dict(row)
    document = {**values, "id": str(values["id"]), "owner_id": OWNER_ID}
    await _state["items"].insert_one(document)
    return _document(document)


async def create_item(request: Request) -> Response:
    return _json(await insert_item(json.loads(await request.body())), 201)


Endpoint = Callable[[Request], Awaitable[Response]]


async def verify(token: str) -> str | None:
    """The per-request checks: None if the token is good and its session live (the hit
    then counted in the rate window), else why not."""
    try:
        claims = jwt.decode(
            token, AUTH_SECRET, algorithms=["HS256"], options={"require": REQUIRED_CLAIMS}
        )
    except jwt.PyJWTError:
        return "invalid token"
    now = time.time()
    keys = [SESSION_PREFIX + claims["sid"], f"baseline:rate:{claims['sub']}"]
    if await _state["check"](keys=keys, args=[now, f"{now}:{uuid.uuid4().hex}"]) < 0:
        return "session ended"
    return None


def checked(endpoint: Endpoint) -> Endpoint:
    async def handler(request: Request) -> Response:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        error = await verify(token)
        if error is not None:
            return _json({"detail": error}, 401)
        return await endpoint(request)

    return handler


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    _state["redis"] = Redis.from_url(REDIS_URL)
    _state["check"] = _state["redis"].register_script(CHECK)
    if DATABASE == "postgres":
        import asyncpg

        # The same pool size as the service's default (10 + 10 overflow).
        _state["pool"] = await asyncpg.create_pool(DB_URL, min_size=1, max_size=20)
    else:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(DB_URL, tz_aware=True)
        _state["client"] = client
        _state["items"] = client.get_default_database()["items"]
    try:
        yield
    finally:
        if DATABASE == "postgres":
            await _state["pool"].close()
        else:
            await _state["client"].close()
        await _state["redis"].aclose()


async def ready(_: Request) -> Response:
    return _json({"status": "ok"})


app = Starlette(
    routes=[
        Route("/health/ready", ready),
        Route("/items", list_items),
        Route("/items", create_item, methods=["POST"]),
        Route("/items/{item_id}", get_item),
        Route("/checked/items", checked(list_items)),
        Route("/checked/items", checked(create_item), methods=["POST"]),
        Route("/checked/items/{item_id}", checked(get_item)),
    ],
    lifespan=lifespan,
)
