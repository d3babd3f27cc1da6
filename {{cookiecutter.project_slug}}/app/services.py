"""The composition root: the one module that knows which database, broker and
options were chosen, and wires the adapters behind the application's interfaces."""

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
{% if cookiecutter.compliance_logging %}
from app.audit.records import AuditLog
{%- endif %}
from app.auth.passwords import PasswordHasher
from app.auth.tokens import Tokens
from app.core.rate_limit import RateLimiter
from app.events.bus import EventBus
{%- if cookiecutter.broker == "kafka" %}
from app.events.kafka import KafkaEventBus
{%- else %}
from app.events.rabbitmq import RabbitEventBus
{%- endif %}
from app.events.schemas import DomainEvent
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

log = structlog.get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    database: Database
    cache: Cache
    bus: EventBus
    activity: ActivityFeed
    passwords: PasswordHasher
    tokens: Tokens
    limiter: RateLimiter
{%- if cookiecutter.compliance_logging %}
    audit: AuditLog
{%- endif %}

    async def start(self) -> None:
        await self.database.connect()
        await self.bus.start()

    async def stop(self) -> None:
        await self.bus.stop()
        await self.database.close()
        await self.cache.close()


def build_services(settings: Settings) -> Services:
    cache = Cache(settings.redis)
    activity = ActivityFeed(cache)
{%- if cookiecutter.broker == "rabbitmq" %}
    bus = RabbitEventBus(settings.broker, activity.subscriptions())
{%- else %}
    bus = KafkaEventBus(settings.broker, activity.subscriptions())
{%- endif %}

    async def publish(events: Sequence[DomainEvent]) -> None:
        # The change is committed; a broker failure must not turn it into an error.
        try:
            await bus.publish(events)
        except Exception:
            log.exception("event_publish_failed", event_ids=[str(event.id) for event in events])
{% if cookiecutter.database == "postgres" %}
    database = PostgresDatabase(settings.database, after_commit=publish)
{%- else %}
    database = MongoDatabase(settings.mongodb, after_commit=publish)
{%- endif %}
{%- if cookiecutter.compliance_logging %}
    audit_key = settings.audit.secret_key.get_secret_value().encode()
{%- if cookiecutter.database == "postgres" %}
    audit = PostgresAuditLog(database, key=audit_key)
{%- else %}
    audit = MongoAuditLog(database, key=audit_key)
    database.index_setups.append(audit.create_indexes)
{%- endif %}
    database.before_commit.append(audit.record_events)
{%- endif %}
    return Services(
        settings=settings,
        database=database,
        cache=cache,
        bus=bus,
        activity=activity,
        passwords=PasswordHasher(settings.auth),
        tokens=Tokens(settings.auth, cache),
        limiter=RateLimiter(cache),
{%- if cookiecutter.compliance_logging %}
        audit=audit,
{%- endif %}
    )
