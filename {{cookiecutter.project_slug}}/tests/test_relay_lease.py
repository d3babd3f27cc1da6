"""The outbox relay's lease: one relay at a time, and a relay whose lease lapsed cannot
mark events sent (it is fenced), against the real database, in this process.

The session's own relay is stopped meanwhile (handing its lease over), so the two
relays here are the only ones; several processes are in test_instances.py (slow).
"""

from collections.abc import AsyncIterator
{%- if cookiecutter.database == "postgres" %}
from datetime import timedelta
{%- endif %}

import pytest
{%- if cookiecutter.database == "postgres" %}
from sqlalchemy import func, update
{%- endif %}

from app.core.breakers import BreakerState, CircuitBreaker
from app.core.lease import LeaseLostError
from app.events.outbox import RELAY_LEASE, Outbox, OutboxRelay
from app.services import Services
from app.settings import Settings
{%- if cookiecutter.database == "postgres" %}
from app.storage.postgres.database import PostgresDatabase
from app.storage.postgres.models import LeaseRow
from app.storage.postgres.outbox import PostgresOutbox
{%- else %}
from app.storage.mongodb.database import MongoDatabase
from app.storage.mongodb.lease import EPOCH
from app.storage.mongodb.outbox import MongoOutbox
{%- endif %}
from tests.conftest import Account, new_item

LEASE_SECONDS = 30.0


def another_relay(services: Services) -> Outbox:
    """The outbox as another instance's relay sees it: its own lease owner."""
{%- if cookiecutter.database == "postgres" %}
    assert isinstance(services.database, PostgresDatabase)
    return PostgresOutbox(services.database.sessions, services.database.autocommit)
{%- else %}
    assert isinstance(services.database, MongoDatabase)
    return MongoOutbox(services.database.db)
{%- endif %}


async def lapse(services: Services) -> None:
    """The lease's time runs out, as when its holder pauses (a stalled process, a long
    garbage collection) past it without knowing."""
{%- if cookiecutter.database == "postgres" %}
    assert isinstance(services.database, PostgresDatabase)
    async with services.database.sessions() as session, session.begin():
        await session.execute(
            update(LeaseRow)
            .where(LeaseRow.name == RELAY_LEASE)
            .values(until=func.now() - timedelta(seconds=1))
        )
{%- else %}
    assert isinstance(services.database, MongoDatabase)
    await services.database.db["leases"].update_one(
        {"_id": RELAY_LEASE}, {"$set": {"until": EPOCH}}
    )
{%- endif %}


@pytest.fixture
async def relay_stopped(services: Services) -> AsyncIterator[None]:
    await services.relay.stop()
    try:
        yield
    finally:
        services.relay.start()


async def test_one_relay_at_a_time(services: Services, relay_stopped: None) -> None:
    {%- if cookiecutter.database == "mongodb" %}
    """On real MongoDB a second take is refused by the duplicate key of the upsert; the
    nx-27017 stand-in does not raise on a conflicting upsert, so there the refusal shown
    is the owner checked again on the document the take returns."""
    {%- endif %}
    first, second = another_relay(services), another_relay(services)
    async with first.claim(1, lease_seconds=LEASE_SECONDS) as held:
        assert held is not None
        async with second.claim(1, lease_seconds=LEASE_SECONDS) as refused:
            assert refused is None
    # Renewed by its holder, and still refused to the other.
    async with first.claim(1, lease_seconds=LEASE_SECONDS) as renewed:
        assert renewed is not None
    async with second.claim(1, lease_seconds=LEASE_SECONDS) as refused:
        assert refused is None
    await first.release()
    async with second.claim(1, lease_seconds=LEASE_SECONDS) as handed_over:
        assert handed_over is not None
    await second.release()


@pytest.mark.parametrize("taken_over", [True, False], ids=["taken-over", "expired"])
async def test_a_relay_whose_lease_lapsed_cannot_mark_sent(
    services: Services, relay_stopped: None, account: Account, taken_over: bool
) -> None:
    item = await new_item(services, account)
    stale, successor = another_relay(services), another_relay(services)
    async with stale.claim(1000, lease_seconds=LEASE_SECONDS) as batch:
        assert batch is not None
        ours = [m.sequence for m in batch.messages if m.envelope.aggregate_id == str(item.id)]
        assert ours, "the new item's event is pending"
        await lapse(services)
        if taken_over:
            async with successor.claim(1000, lease_seconds=LEASE_SECONDS) as current:
                assert current is not None
                assert set(ours) <= {message.sequence for message in current.messages}
                with pytest.raises(LeaseLostError):
                    await batch.mark_sent(ours)
                # Still pending for the holder, which marks it.
                await current.mark_sent(ours)
            await successor.release()
        else:
            with pytest.raises(LeaseLostError):
                await batch.mark_sent(ours)
            # Nobody marked it: the next holder publishes it.
            async with successor.claim(1000, lease_seconds=LEASE_SECONDS) as current:
                assert current is not None
                assert set(ours) <= {message.sequence for message in current.messages}
            await successor.release()


async def test_a_relay_standing_by_finds_the_broker_back(
    services: Services, settings: Settings, relay_stopped: None
) -> None:
    """An instance whose relay has not the lease publishes nothing, so no publish could
    close its broker breaker once the broker was back: opened in an outage, it stayed
    open for good. A ping is its probe."""
    holder = another_relay(services)
    breaker = CircuitBreaker("broker", settings.breaker)
    standby = OutboxRelay(another_relay(services), services.bus, settings.events, breaker)
    for _ in range(breaker.threshold):
        breaker.failed()
    assert breaker.rejects()  # open
    breaker.opened_at -= breaker.reset_seconds  # the outage is over: a probe is due
    async with holder.claim(1, lease_seconds=LEASE_SECONDS) as held:
        assert held is not None
        assert await standby.run_once() == 0  # not its turn
    await holder.release()
    assert breaker.state is BreakerState.CLOSED
