"""Circuit breakers: fail fast while a dependency is down.

One breaker per dependency (the database, Redis, the broker's publish). After
BREAKER_FAILURE_THRESHOLD outages in a row it opens: calls are refused at once,
without touching the dependency, with the 503 and Retry-After an outage gets anyway,
instead of each waiting for a connect timeout. After BREAKER_RESET_SECONDS one call,
and only one, goes through as a probe (half-open) while the others are still refused:
its success closes the breaker, its failure opens it again for another period.

A few lines on top of the existing error handling rather than a library: the
maintained ones let every call through once half-open (a stampede on a dependency
that is just coming back) or wrap only functions, not units of work.
"""

import enum
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

import structlog
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from app.core.errors import REDIS_DOWN, ServiceUnavailableError
from app.settings import BreakerSettings

P = ParamSpec("P")
T = TypeVar("T")
log = structlog.get_logger(__name__)


class BreakerState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


STATE = Gauge(
    "circuit_breaker_state",
    "State of a dependency's circuit breaker: 0 closed, 1 open, 2 half-open.",
    ["dependency"],
)
REFUSED = Counter(
    "circuit_breaker_refused_total",
    "Calls refused at once, without touching the dependency, by an open circuit breaker.",
    ["dependency"],
)
OPENED = Counter(
    "circuit_breaker_opened_total", "Times a dependency's circuit breaker opened.", ["dependency"]
)


class CircuitOpenError(ServiceUnavailableError):
    """The dependency's breaker is open: refused without trying it."""

    def __init__(self, dependency: str, *, retry_after: int) -> None:
        super().__init__(dependency, retry_after=retry_after)


class RedisCircuitOpenError(RedisConnectionError):
    """Redis's breaker is open. A Redis connection error, so every caller that already
    copes with Redis being down (the cache, fail-open checks) copes with this too."""

    def __init__(self, *, retry_after: int) -> None:
        super().__init__("Redis is unavailable (circuit breaker open).")
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(
        self,
        dependency: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = settings or BreakerSettings()
        self.dependency = dependency
        self.threshold = settings.failure_threshold
        self.reset_seconds = settings.reset_seconds
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        STATE.labels(dependency).set(BreakerState.CLOSED)

    def _set(self, state: BreakerState) -> None:
        if state is not self.state:
            report = log.warning if state is BreakerState.OPEN else log.info
            report("circuit_breaker", dependency=self.dependency, state=state.name.lower())
        self.state = state
        STATE.labels(self.dependency).set(state)

    def _open(self) -> None:
        self.opened_at = self.clock()
        self.failures = 0
        OPENED.labels(self.dependency).inc()
        self._set(BreakerState.OPEN)

    @property
    def probe_due(self) -> bool:
        return self.clock() >= self.opened_at + self.reset_seconds

    def rejects(self) -> bool:
        """Whether a call now would be refused (nothing changes): open and not yet due
        for a probe, or half-open with the probe under way."""
        if self.state is BreakerState.OPEN:
            return not self.probe_due
        return self.state is BreakerState.HALF_OPEN

    def retry_after(self) -> int:
        """Whole seconds until a probe may go, at least one."""
        remaining = self.opened_at + self.reset_seconds - self.clock()
        return max(1, math.ceil(remaining))

    def allow(self) -> bool:
        """Whether a call may go to the dependency now; past the reset time the first
        caller becomes the probe and the breaker half-opens."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self.probe_due:
            self._set(BreakerState.HALF_OPEN)
            return True
        REFUSED.labels(self.dependency).inc()
        return False

    def succeeded(self) -> None:
        if self.state is BreakerState.CLOSED:
            self.failures = 0
            return  # the usual case, on every call: nothing to report
        if self.state is BreakerState.OPEN:
            return  # a call let through before it opened: only a probe may close it
        self.failures = 0
        self._set(BreakerState.CLOSED)

    def failed(self) -> None:
        if self.state is BreakerState.CLOSED:
            self.failures += 1
            if self.failures >= self.threshold:
                self._open()
        elif self.state is BreakerState.HALF_OPEN:
            self._open()

    def inconclusive(self) -> None:
        """The call ended without telling whether the dependency works (an application
        error, a cancel): a probe gives its turn back to the next caller at once."""
        if self.state is BreakerState.HALF_OPEN:
            self.opened_at = self.clock() - self.reset_seconds
            self._set(BreakerState.OPEN)

    def refusal(self) -> Exception:
        return CircuitOpenError(self.dependency, retry_after=self.retry_after())

    def guard(self, outage: Callable[[BaseException], bool]) -> "Guard":
        """Run a call under the breaker: refused at once while it is open; an exception
        for which `outage` is true counts as a failure, a clean exit as a success."""
        return Guard(self, outage)


class Guard:
    """A call under a breaker (`CircuitBreaker.guard`). A class rather than a generator
    made into a context manager: it wraps every Redis command, and the generator's
    machinery cost about 3% of a cached read's CPU."""

    __slots__ = ("breaker", "outage")

    def __init__(self, breaker: CircuitBreaker, outage: Callable[[BaseException], bool]):
        self.breaker = breaker
        self.outage = outage

    async def __aenter__(self) -> None:
        if not self.breaker.allow():
            raise self.breaker.refusal()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: Any
    ) -> None:
        if exc is None:
            self.breaker.succeeded()
        elif self.outage(exc):
            self.breaker.failed()
        else:
            self.breaker.inconclusive()


def database_outage(exc: BaseException) -> bool:
    """The adapters turn an unreachable database into this error (see storage/)."""
    return (
        isinstance(exc, ServiceUnavailableError)
        and not isinstance(exc, CircuitOpenError)
        and exc.dependency == "database"
    )


class Guarded(Protocol):
    breaker: CircuitBreaker


G = TypeVar("G", bound=Guarded)


def guarded(
    unit_of_work: Callable[Concatenate[G, P], AbstractAsyncContextManager[T]],
) -> Callable[Concatenate[G, P], AbstractAsyncContextManager[T]]:
    """A database adapter's unit of work, under the adapter's breaker."""

    @asynccontextmanager
    async def wrapper(adapter: G, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        async with (
            adapter.breaker.guard(database_outage),
            unit_of_work(adapter, *args, **kwargs) as uow,
        ):
            yield uow

    return wrapper


class GuardedPipeline(Pipeline):
    breaker: CircuitBreaker

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if not self.command_stack and not self.watching:
            return []
        async with self.breaker.guard(redis_outage):
            return await super().execute(raise_on_error)


class GuardedRedis(Redis):
    """A Redis client whose every command and pipeline goes through the breaker."""

    breaker: CircuitBreaker

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with self.breaker.guard(redis_outage):
            # redis-py leaves this method unannotated.
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.breaker = self.breaker
        return pipe


class RedisBreaker(CircuitBreaker):
    def refusal(self) -> Exception:
        return RedisCircuitOpenError(retry_after=self.retry_after())


def redis_outage(exc: BaseException) -> bool:
    return isinstance(exc, REDIS_DOWN) and not isinstance(exc, RedisCircuitOpenError)


def guarded_redis(url: str, breaker: CircuitBreaker, **options: Any) -> Redis:
    """Redis.from_url's client, under the breaker."""
    # from_url builds the class it is called on; its annotation says only Redis.
    client = cast(GuardedRedis, GuardedRedis.from_url(url, **options))
    client.breaker = breaker
    return client
