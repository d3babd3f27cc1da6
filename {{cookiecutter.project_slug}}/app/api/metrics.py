"""The gauges measured when /metrics is scraped: the readiness of each dependency, the
outbox's backlog, and those of the options chosen. Each is one cheap call (a ping, one
indexed query, one Redis read) bounded by a timeout; a failure is logged, and the
outbox gauges then read NaN rather than a stale value."""

import asyncio
import math
from datetime import UTC, datetime

import structlog

from app.api.health import CHECK_TIMEOUT_SECONDS, check_dependencies
{%- if cookiecutter.compliance_logging %}
from app.audit.metrics import refresh_last_verification
{%- endif %}
from app.core.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING
from app.services import Services

log = structlog.get_logger(__name__)


async def _outbox(services: Services) -> None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            pending, oldest = await services.database.outbox.pending_summary()
    except Exception as exc:
        log.warning("metrics_outbox_unavailable", error=type(exc).__name__)
        OUTBOX_PENDING.set(math.nan)
        OUTBOX_OLDEST_AGE.set(math.nan)
        return
    OUTBOX_PENDING.set(pending)
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
    OUTBOX_OLDEST_AGE.set(max(age, 0.0))
{%- if cookiecutter.compliance_logging %}


async def _audit(services: Services) -> None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await refresh_last_verification(services.cache)
    except Exception as exc:
        log.warning("metrics_audit_unavailable", error=type(exc).__name__)
{%- endif %}


async def refresh_scrape_gauges(services: Services) -> None:
    await asyncio.gather(
        check_dependencies(services),
        _outbox(services),
{%- if cookiecutter.compliance_logging %}
        _audit(services),
{%- endif %}
    )
