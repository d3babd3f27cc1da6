"""Processing one delivered message, the same way for every broker.

A message is acknowledged only after this returns: processed, recognised as a
duplicate, or moved to the dead-letter destination. A malformed message goes
there at once; a failing handler is retried a bounded number of times first.
If even the dead-letter send fails, the error propagates and the broker keeps
the message.

A message that cannot be processed yet (its event claimed by another delivery, or
Redis, which holds the claims, unreachable) is held for
`EVENTS_CONSUMER_RETRY_LATER_SECONDS` and then given back to the broker, with a log
line: given back at once, it came straight back, thousands of times a second.
"""

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from typing import Any

import structlog
from faststream import Context
from faststream.message import StreamMessage
from prometheus_client import Counter as Metric
from pydantic import ValidationError

from app.core.errors import REDIS_DOWN
from app.core.metrics import DEAD_LETTERED, HANDLING
from app.events.bus import EventBus, Subscription
from app.observability.sentry import report_error
from app.observability.tracing import annotate_event
from app.settings import EventsSettings
from app.storage.cache import Cache

CONSUMED = Metric("events_consumed_total", "Delivered events by outcome.", ["consumer", "outcome"])
log = structlog.get_logger(__name__)
# How long a claim outlives a worker that died holding it: the worker renews it every
# third of that while it processes, so a claim lapses this long after its worker died
# (a message of it waits as long, and where a partition is read in order, the partition).
CLAIM_SECONDS = 10


class EventInProgressError(Exception):
    """Raised so the broker redelivers a message whose event is being processed."""

    def __init__(self, event_id: str) -> None:
        super().__init__(event_id)
        self.event_id = event_id


async def raw_body(message: StreamMessage[Any]) -> bytes:
    """The broker's decoder: consumers get the bytes and validate them themselves, so a
    malformed message is theirs to dead-letter instead of an error in the framework."""
    return message.body


# What a dead letter keeps of the headers it was delivered with: where it came from, and
# the trace it was part of (the broker's own properties are not kept).
KEPT_HEADERS = (
    "event_id",
    "event_type",
    "aggregate_id",
    "correlation_id",
    "traceparent",
    "tracestate",
)


def _origin(headers: object) -> dict[str, str]:
    if not isinstance(headers, dict):
        return {}
    kept = {}
    for name in KEPT_HEADERS:
        value = headers.get(name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            kept[name] = value[:200]
    return kept


def _event_id(body: bytes) -> str | None:
    """The id of the event a message carries, for the log (Redis failed before the
    consumer knew it): None when it carries none that is a UUID."""
    with contextlib.suppress(ValueError, TypeError, KeyError, RecursionError):
        return str(uuid.UUID(str(json.loads(body)["id"])))
    return None


class EventConsumer:
    def __init__(
        self, subscription: Subscription, *, bus: EventBus, cache: Cache, settings: EventsSettings
    ) -> None:
        self.subscription = subscription
        self.bus = bus
        self.cache = cache
        self.settings = settings
        self.outcomes: Counter[str] = Counter()
        self.claim_seconds: float = CLAIM_SECONDS
        # The series from zero: an alert on its increase misses the first dead letter of a
        # series that is born at 1.
        DEAD_LETTERED.labels(subscription.name, subscription.event.event_type)

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1
        CONSUMED.labels(self.subscription.name, outcome).inc()

    async def handle(self, body: bytes, message: Any = Context()) -> None:
        """One delivered message; `message` is FastStream's, whose headers a dead letter
        keeps (called with the body alone, there are none)."""
        started = time.perf_counter()
        origin = _origin(getattr(message, "headers", None))
        try:
            await self._handle(body, origin)
        except (EventInProgressError, *REDIS_DOWN) as exc:
            self._count("deferred")
            log.warning(
                "event_deferred",
                consumer=self.subscription.name,
                event_id=getattr(exc, "event_id", None) or _event_id(body),
                reason=type(exc).__name__,
                retry_in_seconds=self.settings.consumer_retry_later_seconds,
            )
            await asyncio.sleep(self.settings.consumer_retry_later_seconds)
            raise
        finally:
            HANDLING.labels(self.subscription.name, self.subscription.event.event_type).observe(
                time.perf_counter() - started
            )

    async def _handle(self, body: bytes, origin: dict[str, str]) -> None:
        try:
            event = self.subscription.event.model_validate_json(body)
        except ValidationError as exc:
            reason = f"malformed: {exc.error_count()} validation errors"
            await self._dead_letter(body, reason, 0, origin)
            return
        annotate_event(event)
        # Claimed, then remembered, per consumer: each consumer processes an event once
        # however often, and however concurrently, the broker delivers it.
        key = self.cache.key(f"processed:{self.subscription.name}:{event.id}")
        claim = self._claim_ms()
        if not await self.cache.redis.set(key, "processing", nx=True, px=claim):
            if await self.cache.redis.get(key) == "done":
                self._count("duplicate")
                return
            # Another delivery of it is being processed right now: the broker retries this
            # one later, when it will be a duplicate (or, if that worker died, work).
            raise EventInProgressError(str(event.id))
        renewal = asyncio.create_task(self._keep(key))
        try:
            await self._process(event, body, origin)
        finally:
            renewal.cancel()
        await self.cache.redis.set(key, "done", ex=self.settings.processed_ttl_seconds)

    async def _keep(self, key: str) -> None:
        """Renew the claim while the message is processed (the handler and its retries
        may take longer than one claim lasts)."""
        while True:
            await asyncio.sleep(self.claim_seconds / 3)
            with contextlib.suppress(Exception):  # an outage: the claim may lapse
                await self.cache.redis.pexpire(key, self._claim_ms())

    def _claim_ms(self) -> int:
        return max(1, round(self.claim_seconds * 1000))

    async def _process(self, event: Any, body: bytes, origin: dict[str, str]) -> None:
        for attempt in range(1, self.settings.consumer_attempts + 1):
            try:
                await self.subscription.handler(event)
            except Exception as exc:
                log.warning(
                    "event_handler_failed",
                    consumer=self.subscription.name,
                    event_id=str(event.id),
                    attempt=attempt,
                    error=repr(exc),
                )
                if attempt == self.settings.consumer_attempts:
                    report_error(exc)
                    await self._dead_letter(body, repr(exc), attempt, origin)
                    break
                await asyncio.sleep(self.settings.consumer_backoff_seconds * 2 ** (attempt - 1))
            else:
                self._count("processed")
                break

    async def _dead_letter(
        self, body: bytes, error: str, attempts: int, origin: dict[str, str]
    ) -> None:
        headers = {
            **origin,
            "x-error": error[:500],
            "x-attempts": str(attempts),
            "x-consumer": self.subscription.name,
            "x-event-type": self.subscription.event.event_type,
        }
        await self.bus.dead_letter(self.subscription.name, body, headers)
        self._count("dead_lettered")
        DEAD_LETTERED.labels(self.subscription.name, self.subscription.event.event_type).inc()
        log.error(
            "event_dead_lettered",
            consumer=self.subscription.name,
            event_id=origin.get("event_id"),
            error=error[:500],
        )
