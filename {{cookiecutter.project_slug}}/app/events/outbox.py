"""The transactional outbox and its relay.

Events are written to the outbox in the same transaction as the change that
caused them (see the database adapters), so a committed change always has its
events. The relay publishes pending events in the order they were written,
marks each sent once the broker has confirmed it, and while the broker is down
retries with exponential backoff, never skipping ahead: the events of one
aggregate are never lost or reordered. A crash between publishing and marking
sends an event twice; consumers ignore the repeat (see consumer.py).

Every instance runs a relay; one at a time relays, holding the `outbox-relay` lease
(app/core/lease.py), renewed at every round (at least every `EVENTS_RELAY_POLL_SECONDS`)
and released on a clean stop. The others try at each poll, so a killed relay is
replaced within `EVENTS_RELAY_LEASE_SECONDS` plus one poll. A relay that lost its
lease can no longer mark events sent: its round stops and it stands by.
"""

import asyncio
import contextlib
import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from prometheus_client import Counter, Gauge

from app.core.breakers import BreakerState, CircuitBreaker
from app.core.lease import LeaseLostError
from app.events.bus import EventBus
from app.events.schemas import PERSONAL_FIELDS, Envelope
from app.observability.tracing import relaying
from app.settings import EventsSettings

RELAYED = Counter("outbox_relayed_total", "Events published from the outbox.")
RELAY_FAILURES = Counter("outbox_relay_failures_total", "Relay rounds stopped by a publish error.")
PURGED = Counter("outbox_purged_total", "Sent events deleted from the outbox after retention.")
RELAY_LEADER = Gauge("outbox_relay_leader", "1 while this instance holds the relay's lease.")
RELAY_LEASE = "outbox-relay"
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class OutboxMessage:
    sequence: int
    envelope: Envelope


@dataclass(frozen=True)
class HeldEvent:
    """An outbox row about someone, as a data export lists it."""

    event_id: str
    event_type: str
    created_at: datetime | None
    sent: bool
    payload: str


def redacted_payload(payload: str) -> str:
    """The event's JSON without its personal fields (PERSONAL_FIELDS)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(data, dict) or PERSONAL_FIELDS.isdisjoint(data):
        return payload
    return json.dumps({key: value for key, value in data.items() if key not in PERSONAL_FIELDS})


class OutboxBatch(Protocol):
    messages: Sequence[OutboxMessage]

    async def mark_sent(self, sequences: Sequence[int]) -> None: ...


class Outbox(Protocol):
    def claim(
        self, limit: int, *, lease_seconds: float
    ) -> AbstractAsyncContextManager[OutboxBatch | None]:
        """Take or renew the relay's lease for `lease_seconds`, then the oldest pending
        messages; None while another process holds the lease. Their `mark_sent` raises
        LeaseLostError once the lease lapsed or changed hands."""
        ...

    async def release(self) -> None:
        """Give the lease up, if this process holds it: another relay takes over at once."""
        ...

    async def pending_count(self) -> int: ...

    async def pending_summary(self) -> tuple[int, datetime | None]:
        """How many events are pending, and when the oldest of them was written."""
        ...

    async def purge_sent(self, *, sent_before: datetime, limit: int) -> int:
        """Delete up to `limit` events sent before the time; return how many."""
        ...

    async def about(self, subject: str, aggregates: Sequence[str]) -> list[HeldEvent]:
        """Events about a person: naming their id anywhere, or of one of the aggregates."""
        ...

    async def forget(self, subject: str, aggregates: Sequence[str]) -> int:
        """Erasure: delete the sent events about a person and strip the personal fields
        of those still pending, which are still delivered. Return the rows touched."""
        ...


def publish_failed(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class OutboxRelay:
    def __init__(
        self,
        outbox: Outbox,
        bus: EventBus,
        settings: EventsSettings,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.outbox = outbox
        self.bus = bus
        self.settings = settings
        # The broker's publish: while it is open the relay claims nothing and waits.
        self.breaker = breaker or CircuitBreaker("broker")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New events were committed: relay now instead of at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Publish one batch; return how many were sent. Raise if the broker failed."""
        failure: Exception | None = None
        if self.breaker.rejects():
            raise self.breaker.refusal()
        claim = self.outbox.claim(
            self.settings.relay_batch_size, lease_seconds=self.settings.relay_lease_seconds
        )
        async with claim as batch:
            RELAY_LEADER.set(batch is not None)
            if batch is None:
                await self._probe_while_standing_by()
                return 0
            sent: list[int] = []
            for message in batch.messages:
                try:
                    async with self.breaker.guard(publish_failed):
                        with relaying(message.envelope):
                            await self.bus.publish(message.envelope)
                except Exception as exc:
                    failure = exc
                    break
                sent.append(message.sequence)
            await batch.mark_sent(sent)
        RELAYED.inc(len(sent))
        if failure is not None:
            RELAY_FAILURES.inc()
            raise failure
        return len(sent)

    async def _probe_while_standing_by(self) -> None:
        """Another instance relays, so no publish of this one's tells its breaker whether
        the broker is back: opened in an outage, it stayed open (and its metric said so)
        for good. Once a probe is due, a ping is the probe."""
        if self.breaker.state is BreakerState.CLOSED or not self.breaker.probe_due:
            return
        async with self.breaker.guard(publish_failed):
            if not await self.bus.ping():
                raise ConnectionError("the broker did not answer a ping")

    async def purge(self, *, now: datetime | None = None) -> int:
        """Delete the events sent more than the retention ago, in bounded batches."""
        now = now or datetime.now(UTC)
        sent_before = now - timedelta(hours=self.settings.sent_retention_hours)
        limit = self.settings.outbox_purge_batch_size
        total = 0
        while True:
            deleted = await self.outbox.purge_sent(sent_before=sent_before, limit=limit)
            total += deleted
            if deleted < limit:
                break
        PURGED.inc(total)
        return total

    async def _purge_when_due(self, due: float) -> float:
        """Purge if the time has come; return when it is next due. A failed purge is
        logged and tried again at the next interval: it never holds up the relay."""
        loop = asyncio.get_running_loop()
        if loop.time() < due:
            return due
        try:
            deleted = await self.purge()
        except Exception as exc:
            log.warning("outbox_purge_failed", error=repr(exc))
        else:
            if deleted:
                log.info("outbox_purged", deleted=deleted)
        return loop.time() + self.settings.outbox_purge_seconds

    async def _run(self) -> None:
        backoff = self.settings.relay_min_backoff_seconds
        purge_due = 0.0
        while True:
            self._wake.clear()
            purge_due = await self._purge_when_due(purge_due)
            try:
                sent = await self.run_once()
            except LeaseLostError:
                # Paused past the lease, and another instance took over (or will): what
                # this round published goes out again from there; consumers drop repeats.
                RELAY_LEADER.set(0)
                log.warning("outbox_relay_lease_lost")
                sent = 0
            except Exception as exc:
                log.warning("outbox_relay_failed", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.relay_max_backoff_seconds)
                continue
            backoff = self.settings.relay_min_backoff_seconds
            if sent < self.settings.relay_batch_size:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.relay_poll_seconds):
                        await self._wake.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            RELAY_LEADER.set(0)
            # Hand over now rather than after the lease's time; if the database is down,
            # the lease simply expires.
            try:
                await self.outbox.release()
            except Exception as exc:
                log.warning("outbox_relay_release_failed", error=repr(exc))
            else:
                log.info("outbox_relay_stopped")
