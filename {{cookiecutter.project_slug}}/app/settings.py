"""All configuration, read once from the environment (and `.env`).

Each feature has its own section; the environment variable of a field is the
section name and the field name joined by `_`, e.g. `DATABASE_URL` or
`AUTH_SECRET_KEY`.
"""

import ipaddress
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets must be replaced outside development; `.env.example` marks them with this.
PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - a marker, refused outside development
MIN_SECRET_LENGTH = 32
SERVICE = "{{ cookiecutter.project_slug }}"
DATABASE_NAME = "{{ cookiecutter.project_slug.replace('-', '_') }}"


class AppSettings(BaseModel):
    name: str = SERVICE
    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    # Larger request bodies are refused with 413 before they are read.
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # Browser origins allowed to call the API, e.g. ["https://app.example.com"]. None by
    # default: a browser page on another origin cannot read any response.
    cors_origins: list[str] = Field(default_factory=list)
    # The API's own description (the OpenAPI document and its pages, or the schema's
    # introspection and its IDE) and the events' AsyncAPI document at /asyncapi.json.
    # Unset: served in development and test, not in production, where they would map
    # the attack surface (and the broker's address) for anyone.
    docs_enabled: bool | None = None
    asyncapi_enabled: bool | None = None
    # On SIGTERM, readiness answers 503 this long while requests are still served, so
    # load balancers stop sending new ones before the server stops accepting (see
    # app/core/drain.py).
    drain_seconds: float = Field(default=5.0, ge=0, le=60)

    @property
    def serves_docs(self) -> bool:
        return self.environment != "production" if self.docs_enabled is None else self.docs_enabled

    @property
    def serves_asyncapi(self) -> bool:
        if self.asyncapi_enabled is None:
            return self.environment != "production"
        return self.asyncapi_enabled
{% if cookiecutter.database == "postgres" %}

class DatabaseSettings(BaseModel):
    url: str = f"postgresql+asyncpg://postgres:postgres@localhost:5432/{DATABASE_NAME}"
    # Connections a worker keeps open, and how many more it may open for a burst. All
    # kept by default: an overflow connection is closed when it is given back, so a load
    # around the pool's size would open and close connections all the time (preparing its
    # statements again on each). A worker holds at most pool_size + max_overflow: count
    # that against the server's max_connections, times workers and instances.
    pool_size: int = Field(default=20, ge=1)
    max_overflow: int = Field(default=0, ge=0)
    # A connection the server dropped fails the one transaction that meets it (503 with
    # Retry-After), and the pool then replaces every connection older than the failure.
    # Pre-ping instead tests each connection before use, with one more round trip per
    # transaction (about 150 µs of CPU here). Recycling replaces connections before an
    # idle timeout on the way (a proxy, a load balancer) drops them unseen.
    pool_pre_ping: bool = False
    pool_recycle_seconds: int = Field(default=1800, ge=-1)
    # A server that does not answer a new connection in this time counts as down
    # (asyncpg's own default is 60 s).
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # A statement with no answer in this time fails (503, and a failure for the breaker):
    # a server or network that hangs mid-conversation would otherwise hold the request
    # and its pooled connection for as long as it lasts. asyncpg's own timeout, on the
    # client: the server's statement_timeout cannot help when the network is what hangs.
    # The commands (`python -m app....`) run without one: theirs may read a whole table.
    command_timeout_seconds: float | None = Field(default=10.0, gt=0)
    echo: bool = False
{% else %}

class MongodbSettings(BaseModel):
    # The database name is the URL's path.
    url: str = f"mongodb://localhost:27017/{DATABASE_NAME}"
    # Finding a server and connecting: longer, and the database counts as down (503, and
    # a failure for the breaker). A server that hangs mid-conversation fails its driver's
    # heartbeat in that time too, and the driver then drops the connections in use.
    timeout_ms: int = Field(default=5000, ge=100)
    # A standalone server has no transactions: a change and the events and records it
    # writes are separate writes there. Production refuses to start on one unless this
    # says that is accepted.
    allow_standalone: bool = False
{% endif %}

class RedisSettings(BaseModel):
    url: str = "redis://localhost:6379/0"
    # Every key this service writes starts with the prefix, so services can share a Redis.
    key_prefix: str = f"{SERVICE}:"
    # A command that gets no answer in this time counts as Redis being down.
    timeout_seconds: float = Field(default=2.0, gt=0)
    # While Redis is down the cache is bypassed. Then, with fail_open, rate limits are
    # not enforced and access tokens are trusted on their signature and expiry (they
    # live AUTH_ACCESS_TOKEN_MINUTES); without it, every API request answers 503.
    # Logging in, refreshing and logging out need Redis either way.
    fail_open: bool = True


class BrokerSettings(BaseModel):
{%- if cookiecutter.broker == "rabbitmq" %}
    url: str = "amqp://guest:guest@localhost:5672/"
{%- else %}
    url: str = "localhost:9092"
    # acks=all with an idempotent producer: a retried send is never written twice.
    # Apache Kafka supports it; turn it off only for a Kafka-protocol broker that
    # cannot (one without the InitProducerId request).
    idempotent_producer: bool = True
    # A consumer silent this long leaves its group. Apache Kafka accepts 6000 to 1800000
    # ms unless configured otherwise; some brokers also hold a new group's first join for
    # half of it. Heartbeats go every third of it.
    session_timeout_ms: int = Field(default=10_000, ge=1000)
{%- endif %}
    # Prefix of every exchange, queue, topic and consumer group this service declares.
    prefix: str = f"{SERVICE}."


class AuthSettings(BaseModel):
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=7, ge=1)
    # Argon2id cost. The defaults follow RFC 9106's second recommended option.
    password_memory_kib: int = Field(default=65536, ge=1024)
    password_time_cost: int = Field(default=3, ge=1)
    # Hashes computed at once (each in a worker thread); more wait their turn, so a burst
    # of logins or registrations cannot take every core from the other requests.
    password_concurrency: int = Field(default=2, ge=1)


class RateLimitSettings(BaseModel):
    """Sliding windows of one minute; requests over a limit get 429 and Retry-After."""

    api_per_minute: int = Field(default=600, ge=1)
    # Login attempts from one address, whatever the account.
    login_per_ip_per_minute: int = Field(default=20, ge=1)
    # Attempts on one account from one address; a correct password clears the count. Kept
    # per address, so guessing from one place cannot lock the owner out everywhere.
    login_per_account_per_minute: int = Field(default=5, ge=1)
    # Registrations from one address, each operation counted: each costs a hash.
    register_per_ip_per_minute: int = Field(default=10, ge=1)
    # Password changes and account erasures from one address: each verifies a password.
    password_per_ip_per_minute: int = Field(default=10, ge=1)
    # Records of refused or failed actions (wrong password, 403, invalid token, ...)
    # written per account a minute for a signed-in caller, per address for an anonymous
    # one; the rest are only counted in a metric, so a flood of bad requests cannot fill
    # the trail or the outbox.
    failure_records_per_ip_per_minute: int = Field(default=20, ge=1)


class EventsSettings(BaseModel):
    relay_batch_size: int = Field(default=100, ge=1)
    # The relay also wakes on every commit; polling only catches what that missed.
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    relay_min_backoff_seconds: float = Field(default=0.5, gt=0)
    relay_max_backoff_seconds: float = Field(default=30.0, gt=0)
    # One relay at a time holds a lease this long, renewed every poll: a killed relay
    # is replaced within the lease plus one poll (11 s by default).
    relay_lease_seconds: float = Field(default=10.0, gt=0)
    # A failing handler is tried this many times, then its message is dead-lettered.
    consumer_attempts: int = Field(default=3, ge=1)
    consumer_backoff_seconds: float = Field(default=0.2, ge=0)
    # A message that cannot be processed yet (its event claimed by another delivery,
    # Redis down) is held this long before the broker gets it back to redeliver.
    consumer_retry_later_seconds: float = Field(default=1.0, ge=0)
    # How long a consumer remembers an event it processed, to ignore redeliveries.
    processed_ttl_seconds: int = Field(default=7 * 86400, ge=60)
    # On shutdown, messages being processed get this long to finish.
    graceful_timeout_seconds: float = Field(default=15.0, gt=0)
    # Sent events are deleted from the outbox this long after they were sent (they are
    # kept a while to look into a delivery problem); the relay checks every
    # outbox_purge_seconds and deletes at most outbox_purge_batch_size rows a statement.
    sent_retention_hours: int = Field(default=72, ge=1)
    outbox_purge_seconds: float = Field(default=600.0, gt=0)
    outbox_purge_batch_size: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _lease_outlives_a_poll(self) -> "EventsSettings":
        # The relay renews its lease at every poll: a lease shorter than two would lapse
        # between renewals of a healthy relay, and the relay would change hands for nothing.
        if self.relay_lease_seconds < 2 * self.relay_poll_seconds:
            raise ValueError(
                "EVENTS_RELAY_LEASE_SECONDS must be at least twice EVENTS_RELAY_POLL_SECONDS"
            )
        return self


class BreakerSettings(BaseModel):
    """Circuit breakers of the database, Redis and the broker's publish (app/core/breakers.py)."""

    # Outages in a row that open a breaker: calls are then refused at once (503 with
    # Retry-After) instead of each waiting for the dependency's timeout.
    failure_threshold: int = Field(default=5, ge=1)
    # How long an open breaker refuses before one call probes the dependency again.
    reset_seconds: float = Field(default=5.0, gt=0)


class MetricsSettings(BaseModel):
    # /metrics answers only `Authorization: Bearer <token>` outside development (a
    # Prometheus scrape config gives it with `authorization: {credentials_file: ...}`).
    # Outside development a default, empty or short token stops the start.
    token: SecretStr = SecretStr(PLACEHOLDER_SECRET)


class ForwardedSettings(BaseModel):
    """The proxies trusted to tell who the client is: uvicorn takes the client's address
    from X-Forwarded-For, and the scheme (so whether HSTS is sent) from
    X-Forwarded-Proto, only on connections from these. uvicorn reads FORWARDED_ALLOW_IPS
    itself; it is checked here too, because uvicorn takes an entry it cannot parse as a
    name that never matches, and so would trust no one without a word."""

    # Addresses and networks, comma-separated ("10.0.0.0/8,192.168.0.0/16"); empty: no
    # one (the image's default); "*": anyone who can connect. Unset, uvicorn trusts
    # loopback. deploy/base sets the private ranges the NetworkPolicy narrows to the
    # ingress controller (see the README's "Deploying on Kubernetes").
    allow_ips: str | None = None

    @field_validator("allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str | None) -> str | None:
        if value is None or value == "*":
            return value
        for entry in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise ValueError(
                    f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network "
                    "(a network's host bits must be zero: 10.0.0.0/8, not 10.0.0.1/8)"
                ) from None
        return value


class CacheSettings(BaseModel):
    item_seconds: int = Field(default=300, ge=1)


class IdempotencySettings(BaseModel):
    """Retry-safe creates: an `Idempotency-Key` names one attempt of a create."""

    # How long the answer to a key is kept for replay, from when its request completed.
    ttl_seconds: int = Field(default=24 * 3600, ge=1)
    # How long a key stays taken by a request in flight. A request that fails frees it at
    # once; this bounds only a process that died mid-request. Longer than any create runs.
    lock_seconds: int = Field(default=60, ge=1)


class OtelSettings(BaseModel):
    """Tracing, by OpenTelemetry's own variables (OTEL_...). Off while no endpoint is set:
    then nothing is instrumented and nothing exported."""

    # The OTLP/HTTP receiver of an OpenTelemetry Collector (or Jaeger, Tempo, ...), e.g.
    # http://otel-collector:4318: spans go to <endpoint>/v1/traces. The exporter's other
    # variables (OTEL_EXPORTER_OTLP_HEADERS, ..._TIMEOUT, ...) are read from the environment.
    exporter_otlp_endpoint: str | None = None
    service_name: str = SERVICE
    # The share of new traces kept (requests and messages that arrive with no trace
    # context), as with OTEL_TRACES_SAMPLER=parentbased_traceidratio: a caller's
    # `traceparent` decides for its own requests.
    traces_sampler_arg: float = Field(default=1.0, ge=0, le=1)


class SentrySettings(BaseModel):
    # Unset: nothing is sent. Set: unexpected errors go to that Sentry project, with the
    # release and environment, the trace id, and no request body or credentials.
    dsn: SecretStr | None = None
{% if cookiecutter.compliance_logging %}

class AuditSettings(BaseModel):
    # Key of the HMAC that chains audit records: without it an edited chain cannot be re-sealed.
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    # Records older than this are removed by `python -m app.audit purge`.
    retention_days: int = Field(default=5 * 365 + 1, ge=1)
    # The shortest retention the law you operate under allows: the purge refuses to run
    # with less. Five years covers electronic financial transaction records in Korea.
    legal_minimum_days: int = Field(default=5 * 365 + 1, ge=0)
    # The sealer chains appended records this often, up to this many a round.
    seal_interval_seconds: float = Field(default=1.0, gt=0, le=10)
    seal_batch_size: int = Field(default=500, ge=1, le=10_000)
    # A checkpoint of the chain's head goes to Redis after every round that sealed
    # something, and to the broker and the log at most this often.
    checkpoint_seconds: float = Field(default=10.0, gt=0, le=30)
    # `verify` reports records still unsealed after this long: past it, removing any
    # record is detected (sealing plus checkpointing take well under it).
    window_seconds: int = Field(default=30, ge=5, le=60)
{% endif %}

class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    app: AppSettings = AppSettings()
{%- if cookiecutter.database == "postgres" %}
    database: DatabaseSettings = DatabaseSettings()
{%- else %}
    mongodb: MongodbSettings = MongodbSettings()
{%- endif %}
    redis: RedisSettings = RedisSettings()
    broker: BrokerSettings = BrokerSettings()
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    cache: CacheSettings = CacheSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    events: EventsSettings = EventsSettings()
    breaker: BreakerSettings = BreakerSettings()
    metrics: MetricsSettings = MetricsSettings()
    forwarded: ForwardedSettings = ForwardedSettings()
    otel: OtelSettings = OtelSettings()
    sentry: SentrySettings = SentrySettings()
{%- if cookiecutter.compliance_logging %}
    audit: AuditSettings = AuditSettings()
{%- endif %}

    @model_validator(mode="after")
    def _refuse_weak_secrets_outside_development(self) -> "Settings":
        if self.app.environment == "development":
            return self
        secrets = {
            "AUTH_SECRET_KEY": self.auth.secret_key,
            "METRICS_TOKEN": self.metrics.token,
{%- if cookiecutter.compliance_logging %}
            "AUDIT_SECRET_KEY": self.audit.secret_key,
{%- endif %}
        }
        weak = [
            name
            for name, value in secrets.items()
            if value.get_secret_value() in ("", PLACEHOLDER_SECRET)
            or len(value.get_secret_value()) < MIN_SECRET_LENGTH
        ]
        if weak:
            raise ValueError(
                f"refusing to start in {self.app.environment!r} with default, empty or short "
                f"secrets: {', '.join(weak)} (use at least {MIN_SECRET_LENGTH} random characters)"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
