"""The metrics people alert on, in one place (Prometheus conventions: base units in the
name, `_total` counters, every label value from a small fixed set).

The HTTP metrics live with their middleware (app/core/middleware.py), the outbox relay's
and the sealer's with them. The gauges below that describe shared state (the outbox,
the dependencies) are measured when /metrics is scraped (app/api/metrics.py), not on a
timer: one cheap query per scrape, and a stuck background task cannot freeze them.
"""

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_PENDING = Gauge(
    "outbox_pending_events", "Events written to the outbox and not yet published (at scrape)."
)
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox event, 0 when none is pending (at scrape).",
)
DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Messages moved to the dead-letter destination, by consumer and event type.",
    ["consumer", "event_type"],
)
HANDLING = Histogram(
    "events_handling_duration_seconds",
    "Time a consumer took over one delivered message, retries and dead-lettering included.",
    ["consumer", "event_type"],
)
CACHE_LOOKUPS = Counter(
    "cache_lookups_total",
    "Cache-aside reads by cached model and result: hit, miss, or unavailable (Redis down).",
    ["model", "result"],
)
RATE_LIMITED = Counter(
    "rate_limit_rejections_total", "Requests refused by a rate limit, by limit.", ["limit"]
)
DEPENDENCY_UP = Gauge(
    "health_dependency_up",
    "1 when the dependency answered its readiness check, else 0 (at scrape and /health/ready).",
    ["dependency"],
)

# The rate limits the code defines: a key's prefix names its limit. A key of any other
# shape counts as "other", so a label value can never come from a request.
RATE_LIMIT_NAMES = frozenset(
    {"api", "login-ip", "login-account", "register-ip", "password-ip", "failure-records"}
)


def rate_limit_name(key: str) -> str:
    name = key.split(":", 1)[0]
    return name if name in RATE_LIMIT_NAMES else "other"
