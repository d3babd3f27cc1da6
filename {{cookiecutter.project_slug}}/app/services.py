"""The composition root: the one module that knows which database, broker and
options were chosen, and wires the adapters behind the application's interfaces."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
{% if cookiecutter.compliance_logging %}
from app.audit.events import AUDIT_EVENT_TYPES
from app.audit.records import AuditLog
from app.audit.sealer import AuditSealer
{%- endif %}
from app.auth.passwords import PasswordHasher
from app.auth.tokens import Tokens, issuer
from app.core.breakers import CircuitBreaker, RedisBreaker
from app.core.idempotency import Idempotency
from app.core.rate_limit import RateLimiter
from app.events.bus import EventBus, Subscription
{%- if cookiecutter.broker == "kafka" %}
from app.events.kafka import KafkaEventBus
from app.events.outbox import OutboxRelay
{%- else %}
from app.events.outbox import OutboxRelay
from app.events.rabbitmq import RabbitEventBus
{%- endif %}
from app.events.schemas import EVENT_TYPES
from app.events.subscribers import ActivityFeed
from app.settings import Settings
from app.storage.cache import Cache
{%- if cookiecutter.database == "mongodb" %}
{%- if cookiecutter.compliance_logging %}
from app.storage.mongodb.audit import MongoAuditLog
{%- endif %}
from app.storage.mongodb.database import MongoDatabase
{%- else %}
{%- if cookiecutter.compliance_logging %}
from app.storage.postgres.audit import PostgresAuditLog
{%- endif %}
from app.storage.postgres.database import PostgresDatabase
{%- endif %}
from app.storage.unit_of_work import Database


@dataclass
class Services:
    settings: Settings
    database: Database
    cache: Cache
    bus: EventBus
    activity: ActivityFeed
    relay: OutboxRelay
    passwords: PasswordHasher
    tokens: Tokens
    limiter: RateLimiter
    idempotency: Idempotency
{%- if cookiecutter.compliance_logging %}
    audit: AuditLog
    sealer: AuditSealer
{%- endif %}

    async def start(self) -> None:
        await self.database.connect()
{%- if cookiecutter.database == "mongodb" %}
        if isinstance(self.database, MongoDatabase):
            self.database.check_transactions(
                production=self.settings.app.environment == "production",
                allow_standalone=self.settings.mongodb.allow_standalone,
            )
{%- endif %}
        await self.bus.start()
        self.relay.start()
{%- if cookiecutter.compliance_logging %}
        self.sealer.start()
{%- endif %}

    async def stop(self) -> None:
{%- if cookiecutter.compliance_logging %}
        await self.sealer.stop()
{%- endif %}
        # The relay first, so nothing is published to a closing broker; the broker
        # then lets the messages being processed finish.
        await self.relay.stop()
        await self.bus.stop()
        await self.database.close()
        await self.cache.close()


def build_bus(settings: Settings, subscriptions: Sequence[Subscription], cache: Cache) -> EventBus:
{%- if cookiecutter.compliance_logging %}
    event_types = EVENT_TYPES | AUDIT_EVENT_TYPES
{%- else %}
    event_types = EVENT_TYPES
{%- endif %}
{%- if cookiecutter.broker == "rabbitmq" %}
    return RabbitEventBus(settings.broker, settings.events, subscriptions, cache, event_types)
{%- else %}
    return KafkaEventBus(settings.broker, settings.events, subscriptions, cache, event_types)
{%- endif %}


def build_services(settings: Settings) -> Services:
    cache = Cache(settings.redis, RedisBreaker("redis", settings.breaker))
    activity = ActivityFeed(cache)
    bus = build_bus(settings, activity.subscriptions(), cache)
{%- if cookiecutter.database == "postgres" %}
    database = PostgresDatabase(settings.database)
{%- else %}
    database = MongoDatabase(settings.mongodb)
{%- endif %}
    database.breaker = CircuitBreaker("database", settings.breaker)
    relay = OutboxRelay(
        database.outbox, bus, settings.events, CircuitBreaker("broker", settings.breaker)
    )
    database.on_commit.append(relay.wake)
{%- if cookiecutter.compliance_logging %}
    audit_key = settings.audit.secret_key.get_secret_value().encode()
{%- if cookiecutter.database == "postgres" %}
    audit = PostgresAuditLog(database, key=audit_key)
{%- else %}
    audit = MongoAuditLog(database, key=audit_key)
    database.index_setups.append(audit.create_indexes)
{%- endif %}
    database.before_commit.append(audit.record_events)
    sealer = AuditSealer(
        audit, database=database, cache=cache, settings=settings.audit, key=audit_key
    )
{%- endif %}
    return Services(
        settings=settings,
        database=database,
        cache=cache,
        bus=bus,
        activity=activity,
        relay=relay,
        passwords=PasswordHasher(settings.auth),
        tokens=Tokens(settings.auth, cache, issuer=issuer(settings.app)),
        limiter=RateLimiter(cache),
        idempotency=Idempotency(cache, settings.idempotency),
{%- if cookiecutter.compliance_logging %}
        audit=audit,
        sealer=sealer,
{%- endif %}
    )


@asynccontextmanager
async def command_services(settings: Settings) -> AsyncIterator[Services]:
    """What a command-line tool runs on: the database connected, and Redis. The broker,
    the relay and the sealer are the running service's, and stay off."""
{%- if cookiecutter.database == "postgres" %}
    # A command's statement may run long (one may read a whole table): the statement
    # timeout is the requests'.
    unbounded = settings.database.model_copy(update={"command_timeout_seconds": None})
    settings = settings.model_copy(update={"database": unbounded})
{%- endif %}
    services = build_services(settings)
    await services.database.connect()
    try:
        yield services
    finally:
        await services.database.close()
        await services.cache.close()
