"""The audit trail's metrics: records appended, and the last verification's time and
result. `python -m app.audit verify` runs in a process of its own (a CronJob), so it
leaves its result in Redis and every instance of the service reports it at scrape."""

import json
import time

import structlog
from prometheus_client import Counter, Gauge

from app.core.errors import REDIS_DOWN
from app.storage.cache import Cache

APPENDED = Counter(
    "audit_records_appended_total",
    "Audit records written with the change they record (a change that then fails to "
    "commit takes its records with it).",
)
LAST_VERIFICATION = Gauge(
    "audit_last_verification_timestamp_seconds",
    "When `python -m app.audit verify` last ran, labelled with its result: intact or "
    "broken. Absent until a verification has run (read from Redis at scrape).",
    ["result"],
)
VERIFICATION_KEY = "audit:last-verification"
log = structlog.get_logger(__name__)


async def record_verification(cache: Cache, *, intact: bool, at: float | None = None) -> None:
    """Leave the verification's result for the service's /metrics; never fails the command."""
    value = json.dumps({"at": time.time() if at is None else at, "intact": intact})
    try:
        await cache.redis.set(cache.key(VERIFICATION_KEY), value)
    except REDIS_DOWN:
        log.warning("audit_verification_not_stored", reason="redis unavailable")


async def refresh_last_verification(cache: Cache) -> None:
    """Set the gauge from what the last verification left in Redis."""
    raw = await cache.redis.get(cache.key(VERIFICATION_KEY))
    LAST_VERIFICATION.clear()
    if not raw:
        return  # none, or lost: not the last one known, which would look recent
    data = json.loads(raw)
    LAST_VERIFICATION.labels("intact" if data["intact"] else "broken").set(float(data["at"]))
