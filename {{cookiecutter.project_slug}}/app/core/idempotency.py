"""Retry-safe creates: a request sent again with the same idempotency key gets the first
answer again, and nothing is written twice.

A key names one attempt of one operation, chosen by the client (a UUID is the usual
choice). It is scoped to its caller: the user, or the client address of an anonymous
call, so nobody can replay another caller's answer by guessing a key. Each key is one
Redis hash, `idempotency:<scope>:<key>` under the key prefix:

- taken by a request in flight: `token` (that request's) and `fingerprint` (a digest of
  the operation and its validated input), for at most IDEMPOTENCY_LOCK_SECONDS;
- answered: `status` and `body` added, kept IDEMPOTENCY_TTL_SECONDS from then.

With the same fingerprint, a taken key answers 409 (the first is still running) and an
answered one replays its answer; with another fingerprint, 422. Only a success is kept:
a request that fails (a refusal, an outage, a bug) frees its key, so a retry runs
afresh; it wrote nothing, so running it again is safe. Each step is one Lua script, so
two requests with one key can never both take it.

Where accounts can be erased, an erasure deletes the person's keys, answers and all: a
request completing after it finds its key gone and keeps nothing.

While Redis is down a request with a key gets 503 (the promise cannot be kept without
it); a request without a key does not touch Redis here.
"""

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

import structlog
from pydantic import BaseModel

from app.core.errors import REDIS_DOWN, AppError, ConflictError, InvalidInputError
from app.settings import IdempotencySettings
from app.storage.cache import Cache

M = TypeVar("M", bound=BaseModel)
log = structlog.get_logger(__name__)

HEADER = "Idempotency-Key"
# Sent with an answer that is a replay of an earlier one.
REPLAYED_HEADER = "Idempotent-Replayed"
# UUIDs, ULIDs and base64 or base64url tokens all fit; short keys collide too easily. No
# colon: the key is what follows the last colon of its Redis key, whatever the caller
# (an IPv6 address has colons), so two callers' keys can never meet.
KEY_MIN_LENGTH = 8
KEY_MAX_LENGTH = 255
KEY_PATTERN = r"^[A-Za-z0-9_.~+/=-]+$"
_KEY = re.compile(KEY_PATTERN)
KEY_RULE = f"{KEY_MIN_LENGTH} to {KEY_MAX_LENGTH} characters: letters, digits and _ . ~ + / = -"

# Take the key if it is free; otherwise tell what holds it.
_BEGIN = """
local found = redis.call('HMGET', KEYS[1], 'fingerprint', 'status', 'body')
if not found[1] then
    redis.call('HSET', KEYS[1], 'token', ARGV[1], 'fingerprint', ARGV[2])
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {'new'}
end
if not found[2] then
    return {'taken', found[1]}
end
return {'answered', found[1], found[2], found[3]}
"""
# Keep the answer, if the key is still this request's (its lock may have lapsed).
_COMPLETE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
    return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'body', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
# Free the key of a failed request, unless someone else holds it by now.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1]
    and redis.call('HEXISTS', KEYS[1], 'status') == 0 then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class InvalidIdempotencyKeyError(InvalidInputError):
    code = "invalid_idempotency_key"

    def __init__(self) -> None:
        super().__init__(f"An idempotency key is {KEY_RULE}.")


class IdempotencyKeyReusedError(AppError):
    status = 422
    code = "idempotency_key_reused"
    title = "Unprocessable Content"

    def __init__(self) -> None:
        super().__init__(
            "This idempotency key was used for a different request; "
            "use a new key for a new request."
        )


class IdempotencyKeyInFlightError(ConflictError):
    code = "idempotency_key_in_flight"

    def __init__(self) -> None:
        super().__init__(
            "A request with this idempotency key is still in progress; retry shortly.",
            headers={"Retry-After": "1"},
        )


def check_key(key: str) -> str:
    if not KEY_MIN_LENGTH <= len(key) <= KEY_MAX_LENGTH or not _KEY.match(key):
        raise InvalidIdempotencyKeyError
    return key


def scope(user_id: UUID | None, *, address: str) -> str:
    """Whose keys these are: the user's, or an anonymous caller's address's. The address
    is what the proxy in front says, so it goes into Redis hashed: a key of fixed size."""
    if user_id is not None:
        return f"user:{user_id}"
    return f"address:{hashlib.blake2b(address.encode(), digest_size=16).hexdigest()}"


def fingerprint(operation: str, request: BaseModel) -> str:
    """The same for the same operation and input, however the input was spelt (key order,
    spacing, defaults left out): what the request asks for, not its bytes."""
    digest = hashlib.sha256(operation.encode())
    digest.update(b"\0")
    digest.update(request.model_dump_json().encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Outcome(Generic[M]):
    value: M
    status: int
    replayed: bool


class Idempotency:
    def __init__(self, cache: Cache, settings: IdempotencySettings) -> None:
        self.cache = cache
        self.settings = settings
        self._begin = cache.redis.register_script(_BEGIN)
        self._complete = cache.redis.register_script(_COMPLETE)
        self._release = cache.redis.register_script(_RELEASE)

    def redis_key(self, caller: str, key: str) -> str:
        return self.cache.key(f"idempotency:{caller}:{key}")

    async def run(
        self,
        *,
        key: str | None,
        caller: str,
        operation: str,
        request: BaseModel,
        model: type[M],
        status: int,
        create: Callable[[], Awaitable[M]],
    ) -> Outcome[M]:
        """`create` once per key: its result, or the first result again for a retry.
        `caller` is a `scope(...)`; `status` is the one the first answer is sent with."""
        if key is None:
            return Outcome(await create(), status, replayed=False)
        name = self.redis_key(caller, check_key(key))
        expected = fingerprint(operation, request)
        token = uuid.uuid4().hex
        found = await self._begin(
            keys=[name], args=[token, expected, self.settings.lock_seconds * 1000]
        )
        if found[0] != "new":
            if found[1] != expected:
                raise IdempotencyKeyReusedError
            if found[0] == "taken":
                raise IdempotencyKeyInFlightError
            log.info("idempotent_replay", operation=operation)
            return Outcome(model.model_validate_json(found[3]), int(found[2]), replayed=True)
        try:
            value = await create()
        except Exception:
            # Nothing was written (or the write was rolled back): a retry may run again.
            # A cancelled request keeps its key until the lock lapses instead, since it
            # may have been cancelled after its write committed.
            await self._free(name, token, operation)
            raise
        ttl = self.settings.ttl_seconds
        try:
            answer: list[str | int] = [token, status, value.model_dump_json(), ttl]
            kept = await self._complete(keys=[name], args=answer)
        except REDIS_DOWN:
            kept = 0
        if not kept:
            # The write is done and its answer goes out; only a retry of it is unprotected.
            log.error("idempotent_answer_not_kept", operation=operation)
        return Outcome(value, status, replayed=False)

    async def _free(self, name: str, token: str, operation: str) -> None:
        try:
            await self._release(keys=[name], args=[token])
        except REDIS_DOWN:
            # Its lock lapses after IDEMPOTENCY_LOCK_SECONDS; until then a retry gets 409.
            log.warning("idempotency_key_not_freed", operation=operation, reason="redis down")
