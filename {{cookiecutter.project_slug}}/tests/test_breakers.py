"""Circuit breakers: the state machine on a clock the test moves, then each dependency's
breaker wired into the running service (the outages themselves are in test_faults.py)."""

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import cast

import pytest
from httpx import AsyncClient
from prometheus_client import REGISTRY

from app.core.breakers import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    RedisBreaker,
    RedisCircuitOpenError,
)
from app.core.errors import as_app_error
from app.events.outbox import Outbox, OutboxBatch, OutboxRelay
from app.services import Services
from app.settings import BreakerSettings, Settings
from app.storage.cache import Cache
from tests.api import list_page, unavailable
from tests.conftest import Account, in_turn, unreachable

THRESHOLD, RESET = 3, 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(name: str = "test") -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    settings = BreakerSettings(failure_threshold=THRESHOLD, reset_seconds=RESET)
    return CircuitBreaker(name, settings, clock=clock), clock


def opened(name: str = "test") -> tuple[CircuitBreaker, Clock]:
    subject, clock = breaker(name)
    for _ in range(THRESHOLD):
        subject.failed()
    return subject, clock


def state_of(subject: CircuitBreaker) -> BreakerState:
    return subject.state


def refused(dependency: str) -> float:
    sample = "circuit_breaker_refused_total"
    return REGISTRY.get_sample_value(sample, {"dependency": dependency}) or 0.0


def test_only_failures_in_a_row_open_it() -> None:
    subject, _ = breaker()
    for _ in range(THRESHOLD - 1):
        subject.failed()
    subject.succeeded()  # a success in between starts the count again
    for _ in range(THRESHOLD - 1):
        subject.failed()
    assert state_of(subject) is BreakerState.CLOSED
    assert subject.allow()
    subject.failed()
    assert state_of(subject) is BreakerState.OPEN


def test_open_it_refuses_until_the_reset_time_then_lets_one_probe_through() -> None:
    subject, clock = opened()
    assert not subject.allow()
    assert subject.rejects()
    assert subject.retry_after() == RESET
    clock.now += RESET - 0.5
    assert not subject.allow()
    assert subject.retry_after() == 1
    clock.now += 0.5
    assert not subject.rejects()
    assert subject.allow()  # the probe
    assert state_of(subject) is BreakerState.HALF_OPEN
    # While it probes, every other caller is still refused.
    assert [subject.allow() for _ in range(5)] == [False] * 5
    assert subject.rejects()


@pytest.mark.parametrize(
    ("outcome", "state", "next_call_allowed"),
    [
        ("succeeded", BreakerState.CLOSED, True),
        ("failed", BreakerState.OPEN, False),
        # Neither (an application error, a cancel): the next caller probes at once.
        ("inconclusive", BreakerState.OPEN, True),
    ],
)
def test_the_probe_decides(outcome: str, state: BreakerState, next_call_allowed: bool) -> None:
    subject, clock = opened()
    clock.now += RESET
    assert subject.allow()
    getattr(subject, outcome)()
    assert state_of(subject) is state
    assert subject.allow() is next_call_allowed
    if outcome == "failed":
        assert subject.retry_after() == RESET  # a full period again


def test_a_call_let_through_before_it_opened_does_not_close_it() -> None:
    subject, _ = breaker()
    assert subject.allow()  # a slow call starts
    for _ in range(THRESHOLD):
        subject.failed()  # the others fail meanwhile
    subject.succeeded()  # then the slow one ends well
    assert state_of(subject) is BreakerState.OPEN
    assert not subject.allow()


def test_its_state_is_a_metric() -> None:
    def state() -> float | None:
        return REGISTRY.get_sample_value("circuit_breaker_state", {"dependency": "metric-test"})

    subject, clock = breaker("metric-test")
    seen = [state()]
    for _ in range(THRESHOLD):
        subject.failed()
    seen.append(state())
    clock.now += RESET
    subject.allow()
    seen.append(state())
    subject.succeeded()
    seen.append(state())
    assert seen == [0, 1, 2, 0]


async def test_a_refused_call_never_runs_and_answers_503_with_retry_after() -> None:
    subject, _ = opened("guard-test")
    ran = False
    before = refused("guard-test")
    with pytest.raises(CircuitOpenError) as refusal:
        async with subject.guard(lambda _: True):
            ran = True
    assert not ran
    assert refused("guard-test") == before + 1
    assert refusal.value.status == 503
    assert refusal.value.code == "service_unavailable"
    assert refusal.value.headers == {"Retry-After": str(int(RESET))}


@pytest.mark.parametrize(
    ("raised", "state"),
    [(ConnectionError, BreakerState.OPEN), (KeyError, BreakerState.CLOSED)],
)
async def test_the_guard_counts_only_outages(raised: type[Exception], state: BreakerState) -> None:
    subject, _ = breaker()
    for _ in range(THRESHOLD):
        with pytest.raises(raised):
            async with subject.guard(lambda exc: isinstance(exc, ConnectionError)):
                raise raised
    assert state_of(subject) is state


async def test_redis_commands_are_refused_without_trying_once_its_breaker_is_open(
    settings: Settings,
) -> None:
    """Against a closed port: each command fails until the breaker opens, then none is sent."""
    redis_breaker = RedisBreaker("redis", BreakerSettings(failure_threshold=2, reset_seconds=60))
    down = Cache(unreachable(settings, "redis").redis, redis_breaker)
    try:
        # The cache copes with Redis being down: it is bypassed, each miss a failure.
        assert (await down.lookup("any", BreakerSettings)).value is None
        assert state_of(redis_breaker) is BreakerState.CLOSED
        assert (await down.lookup("any", BreakerSettings)).value is None
        assert state_of(redis_breaker) is BreakerState.OPEN
        before = refused("redis")
        with pytest.raises(RedisCircuitOpenError) as refusal:
            await down.redis.get("any")
        pipe = down.redis.pipeline(transaction=True)
        pipe.get("any")
        with pytest.raises(RedisCircuitOpenError):
            await pipe.execute()
        assert refused("redis") == before + 2
        # Where Redis is needed, the client gets the breaker's time to retry.
        answer = as_app_error(refusal.value)
        assert answer is not None
        assert (answer.status, answer.headers["Retry-After"]) == (503, "60")
    finally:
        await down.close()


@contextmanager
def forced_open(subject: CircuitBreaker) -> Iterator[None]:
    """The breaker opened by outages that happened (its dependency itself is fine)."""
    for _ in range(subject.threshold):
        subject.failed()
    try:
        yield
    finally:
        # Then a probe finds it back.
        subject.opened_at -= subject.reset_seconds
        assert subject.allow()
        subject.succeeded()


BREAKERS: dict[str, Callable[[Services], CircuitBreaker]] = {
    "database": lambda services: services.database.breaker,
    "redis": lambda services: services.cache.breaker,
    "broker": lambda services: services.relay.breaker,
}


@pytest.mark.parametrize("dependency", list(BREAKERS))
async def test_readiness_reports_an_open_breaker_at_once(
    client: AsyncClient, services: Services, dependency: str
) -> None:
    """The dependency answers, yet its open breaker alone makes it down: it was not asked."""
    with forced_open(BREAKERS[dependency](services)):
        response = await client.get("/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks == {name: "unavailable" if name == dependency else "ok" for name in BREAKERS}
    assert (await client.get("/health/ready")).status_code == 200


async def test_requests_needing_the_database_are_refused_while_its_breaker_is_open(
    client: AsyncClient, services: Services, account: Account
) -> None:
    before = refused("database")
    with forced_open(services.database.breaker):
        response = await list_page(client, account)
    assert unavailable(response)
    assert refused("database") == before + 1


class ClaimCounter:
    """The real outbox, counting the batches claimed from it."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.claims = 0

    def claim(
        self, limit: int, *, lease_seconds: float
    ) -> AbstractAsyncContextManager[OutboxBatch | None]:
        self.claims += 1
        return self.outbox.claim(limit, lease_seconds=lease_seconds)


async def test_the_relay_claims_nothing_while_the_broker_breaker_is_open(
    services: Services, settings: Settings
) -> None:
    outbox = ClaimCounter(services.database.outbox)
    relay_breaker = CircuitBreaker("broker", settings.breaker)
    relay = OutboxRelay(cast(Outbox, outbox), services.bus, settings.events, relay_breaker)
    with forced_open(relay_breaker), pytest.raises(CircuitOpenError):
        await relay.run_once()
    assert outbox.claims == 0
    # Closed again: it claims. The app's own relay runs beside it, so this round may find
    # the lease held, or lose it before marking (in_turn).
    await in_turn(relay.run_once)
    assert outbox.claims == 1
