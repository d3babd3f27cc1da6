"""A first start without the services: one line naming what could not be reached.

Before the app (or a migration) connects, each backing service's address is tried
with a plain TCP connection. When nothing answers, the one line says which service,
the setting that points at it (its password hidden) and how to start it; the full
traceback is left for debug level. A service that answers but refuses (a wrong
password, say) fails as before, with the driver's own error.
"""

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog

from app.settings import Settings

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Target:
    name: str
    setting: str
    url: str
    default_port: int


class ServiceUnreachableError(RuntimeError):
    """Nothing answered at any address of a service's URL."""

    def __init__(self, target: Target, reason: str) -> None:
        super().__init__(
            f"{target.name} could not be reached at {target.setting}="
            f"{hide_password(target.url)} ({reason}): start it with `make services`, "
            f"or set {target.setting} to a running server."
        )
        self.target = target


def hide_password(url: str) -> str:
    parts = urlsplit(url) if "://" in url else None
    if parts is None or parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


def addresses(url: str, default_port: int) -> list[tuple[str, int]]:
    """Host and port of each server a URL names: `scheme://user:pw@h1:p1,h2/db` or a
    bare `h1:p1,h2:p2` list (bootstrap servers)."""
    netloc = urlsplit(url).netloc if "://" in url else url
    found = []
    for part in netloc.rpartition("@")[2].split(","):
        if not part:
            continue
        if part.startswith("["):  # [::1]:5432
            host, _, rest = part[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = part.partition(":")
        found.append((host or "localhost", int(port) if port.isdigit() else default_port))
    return found


async def _unreachable(target: Target) -> str | None:
    """Why no address of the target answers; None when one does (or none can be told:
    a DNS seed list, a `+srv` scheme, is left to the driver)."""
    if target.url.partition("://")[0].endswith("+srv"):
        return None
    reason = "no address"
    for host, port in addresses(target.url, target.default_port):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            reason = f"{host}:{port}: {exc.strerror or type(exc).__name__}"
            if isinstance(exc, TimeoutError):
                reason = f"{host}:{port}: no answer in {CONNECT_TIMEOUT:g} s"
            continue
        writer.close()
        return None
    return reason


def targets(settings: Settings) -> tuple[Target, Target, Target]:
    """The database, Redis and the broker, as the settings point at them."""
{%- if cookiecutter.database == "postgres" %}
    database = Target("PostgreSQL", "DATABASE_URL", settings.database.url, 5432)
{%- else %}
    database = Target("MongoDB", "MONGODB_URL", settings.mongodb.url, 27017)
{%- endif %}
    redis = Target("Redis", "REDIS_URL", settings.redis.url, 6379)
{%- if cookiecutter.broker == "rabbitmq" %}
    broker = Target("RabbitMQ", "BROKER_URL", settings.broker.url, 5672)
{%- else %}
    broker = Target("Kafka", "BROKER_URL", settings.broker.url, 9092)
{%- endif %}
    return database, redis, broker


async def ensure_reachable(settings: Settings, *, database_only: bool = False) -> None:
    """Raise ServiceUnreachableError for the first service nothing answers for. Redis
    with REDIS_FAIL_OPEN is only warned about: the app serves without it."""
    database, redis, broker = targets(settings)
    for target in (database,) if database_only else (database, redis, broker):
        reason = await _unreachable(target)
        if reason is None:
            continue
        error = ServiceUnreachableError(target, reason)
        if target is redis and settings.redis.fail_open:
            log.warning(f"{error} Serving without it meanwhile (REDIS_FAIL_OPEN).")
            continue
        raise error


class _OneLineStartupFailure(logging.Filter):
    """uvicorn logs the lifespan's traceback when startup fails: below debug level the
    line already logged says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return ServiceUnreachableError.__name__ not in record.getMessage()


def report(error: ServiceUnreachableError) -> None:
    """Log the one line; keep uvicorn from adding the traceback unless at debug level."""
    log.error(str(error))
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("uvicorn.error").addFilter(_OneLineStartupFailure())
