"""Fixtures: the real application, started once, against the services in the environment.

Set {% if cookiecutter.database == "postgres" %}DATABASE_URL{% else %}MONGODB_URL{% endif %}, REDIS_URL and BROKER_URL (or `.env`). Each run uses its own
Redis key prefix and broker prefix, so runs can share servers.
"""

import asyncio
import dataclasses
import ipaddress
import json
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
{%- if cookiecutter.database == "postgres" %}
from alembic import command
from alembic.config import Config
{%- endif %}
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, TransportError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from app.auth.tokens import Principal, TokenPair
from app.core.errors import ServiceUnavailableError
from app.items import service as item_service
from app.items.schemas import ItemCreate, ItemPublic
from app.main import create_app
from app.observability.tracing import configure_tracing
from app.services import Services, build_services
from app.settings import MIN_SECRET_LENGTH, Settings
from app.users import service as user_service
from app.users.schemas import Role, User, UserCreate
from tests.faults import FaultProxy

RUN_ID = uuid.uuid4().hex[:8]
# The spans the suite records (see the `settings` fixture for which).
SPANS = InMemorySpanExporter()
# Used where the configured secret is too weak to pass the checks of a non-development
# environment. Fixed, so records sealed in one run still verify in the next.
TEST_SECRET = SecretStr("test-only-secret-" + "0" * MIN_SECRET_LENGTH)


def strong(secret: SecretStr) -> SecretStr:
    return secret if len(secret.get_secret_value()) >= MIN_SECRET_LENGTH else TEST_SECRET


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once, and a
    server started here may listen on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables they are read from, for a server started
    in a fresh interpreter."""
    env: dict[str, str] = {}
    for section, fields in settings.model_dump().items():
        for field, value in fields.items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"{section}_{field}".upper()] = text
    return env


def server_log(log: Path) -> str:
    return log.read_text(errors="replace")


async def until_answering(
    process: "subprocess.Popen[bytes]", log: Path, client: AsyncClient, path: str
) -> None:
    """Wait (a minute at most) until the server `process` started answers 200 at `path`;
    fail with its log if it exits first or never does."""
    for _ in range(600):
        if process.poll() is not None:
            pytest.fail(f"the server exited:\n{server_log(log)}")
        try:
            if (await client.get(path)).status_code == 200:
                return
        except TransportError:
            pass
        await asyncio.sleep(0.1)
    pytest.fail(f"the server did not answer {path}:\n{server_log(log)}")


def override(settings: Settings, section: str, **values: Any) -> Settings:
    current = getattr(settings, section)
    return settings.model_copy(update={section: current.model_copy(update=values)})


def unreachable(settings: Settings, dependency: str) -> Settings:
    """A copy of the settings with one dependency pointed at a closed port."""
    port = closed_port()
    urls = {
{%- if cookiecutter.database == "postgres" %}
        "database": ("database", f"postgresql+asyncpg://nobody:nothing@127.0.0.1:{port}/none"),
{%- else %}
        "database": ("mongodb", f"mongodb://127.0.0.1:{port}/none"),
{%- endif %}
        "redis": ("redis", f"redis://127.0.0.1:{port}/0"),
{%- if cookiecutter.broker == "rabbitmq" %}
        "broker": ("broker", f"amqp://guest:guest@127.0.0.1:{port}/"),
{%- else %}
        "broker": ("broker", f"127.0.0.1:{port}"),
{%- endif %}
    }
    section, url = urls[dependency]
    return override(settings, section, url=url)


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = Settings()
    settings = override(settings, "app", environment="test")
    settings = override(settings, "redis", key_prefix=f"test-{RUN_ID}:")
    settings = override(settings, "broker", prefix=f"test-{RUN_ID}.")
    # The cheapest hash the settings allow keeps the suite fast (1.2 ms a hash or check,
    # against 6 ms at 8 MiB: every account a test makes costs both); production keeps the
    # settings' defaults.
    settings = override(
        settings,
        "auth",
        secret_key=strong(settings.auth.secret_key),
        password_memory_kib=1024,
        password_time_cost=1,
    )
    settings = override(settings, "metrics", token=strong(settings.metrics.token))
    # Quick retries, so outage and failure tests recover in a fraction of a second.
    settings = override(
        settings,
        "events",
        relay_poll_seconds=0.2,
        # Short, so a run after one that was killed takes over its lease quickly.
        relay_lease_seconds=3.0,
        relay_min_backoff_seconds=0.1,
        relay_max_backoff_seconds=0.5,
        consumer_backoff_seconds=0.05,
    )
    # An open circuit breaker probes its dependency again soon: outage tests recover quickly.
    settings = override(settings, "breaker", reset_seconds=0.5)
    # High limits: the rate-limit tests lower them where they need to.
    settings = override(
        settings,
        "rate_limit",
        api_per_minute=100_000,
        login_per_ip_per_minute=100_000,
        login_per_account_per_minute=100,
        register_per_ip_per_minute=100_000,
        password_per_ip_per_minute=100_000,
        failure_records_per_ip_per_minute=100_000,
    )
{%- if cookiecutter.compliance_logging %}
    settings = override(settings, "audit", secret_key=strong(settings.audit.secret_key))
{%- endif %}
    # Tracing is on for the whole suite (the `app` fixture gives it SPANS to export to),
    # every instrumentation at work, but only the traces a test asks for are recorded: it
    # sends a sampled `traceparent`, as a traced caller would.
    settings = override(settings, "otel", traces_sampler_arg=0.0)
    # Validate the assembled copy: the test environment must pass the production checks.
    return Settings.model_validate(settings.model_dump())
{% if cookiecutter.database == "postgres" %}

def alembic(settings: Settings, name: str, *args: str) -> None:
    """Run an Alembic command (`alembic NAME ARGS`) against the suite's database."""
    from app.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", settings.database.url)
        get_settings.cache_clear()
        try:
            getattr(command, name)(Config("alembic.ini"), *args)
        finally:
            get_settings.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def migrated_database(settings: Settings) -> None:
    """The schema comes from the migrations, as in production, not from the models."""
    alembic(settings, "upgrade", "head")
{% endif %}

@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    configure_tracing(settings, exporter=SPANS)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        yield client


@pytest.fixture
def services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


def unique_address() -> str:
    """A client address no other test uses: rate limits count per address in the shared Redis."""
    part = uuid.uuid4().hex
    groups = [part[start : start + 4] for start in range(0, 24, 4)]
    written = "2001:db8:" + ":".join(groups)
    return str(ipaddress.ip_address(written))  # as records keep it


async def eventually(check: Any, *, within: float = 30.0) -> Any:
    """Poll an async check until it returns something truthy, or fail after `within` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def background_paused(services: Services) -> AsyncIterator[None]:
    """The background workers that query (the outbox relay{% if cookiecutter.compliance_logging %}, the audit sealer{% endif %}) stopped:
    what `round_trips` counts meanwhile is the test's own."""
    await services.relay.stop()
{%- if cookiecutter.compliance_logging %}
    await services.sealer.stop()
{%- endif %}
    try:
        yield
    finally:
        services.relay.start()
{%- if cookiecutter.compliance_logging %}
        services.sealer.start()
{%- endif %}


async def in_turn(run: Any) -> Any:
    """One round of a background worker that takes turns under a lease: None when it is
    not its turn, or when it lost the lease mid-round and the fencing refused its writes
    (a relay built beside the app's own shares that outbox's lease owner, so each one's
    renewal fences the other out)."""
    try:
        return await run()
    except ServiceUnavailableError:
        return None


PASSWORD = "Corr3ct-horse-battery!"


@dataclass(frozen=True)
class Account:
    user: User
    password: str
    tokens: TokenPair
    principal: Principal

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.access_token}"}


async def set_role(services: Services, user_id: uuid.UUID, role: Role) -> None:
    """As the command line sets it: no admin asking."""
    await user_service.set_role(
        database=services.database, tokens=services.tokens, user_id=user_id, role=role, by=None
    )


async def new_account(services: Services, *, admin: bool = False) -> Account:
    """A registered user with a live session (opened directly, not through login)."""
    data = UserCreate(email=f"{unique('user')}@example.com", password=PASSWORD)
    user = await user_service.register(
        database=services.database, passwords=services.passwords, data=data
    )
    if admin:
        await set_role(services, user.id, "admin")
    async with services.database.unit_of_work(read_only=True) as uow:
        stored = await uow.users.get(user.id)
    assert stored is not None
    tokens = await services.tokens.open_session(stored)
    principal = await services.tokens.authenticate(tokens.access_token)
    return Account(user=stored, password=PASSWORD, tokens=tokens, principal=principal)


async def new_item(services: Services, owner: Account, **fields: object) -> ItemPublic:
    """An item of the owner's, made through the service as the API makes it."""
    data = ItemCreate.model_validate({"name": unique("item"), **fields})
    return await item_service.create_item(
        database=services.database, owner=owner.principal, data=data
    )


@pytest.fixture
async def account(services: Services) -> Account:
    return await new_account(services)


@pytest.fixture
async def other_account(services: Services) -> Account:
    return await new_account(services)


@pytest.fixture
async def admin_account(services: Services) -> Account:
    return await new_account(services, admin=True)


# The fields of Services built on each dependency of the readiness check.
COMPONENT = {
    "database": ("database",),
    "redis": ("cache", "tokens", "limiter", "idempotency"),
    "broker": ("bus",),
}


@asynccontextmanager
async def serving(app: FastAPI, **replacements: Any) -> AsyncIterator[None]:
    """Serve with some services replaced, then put the real ones back."""
    services: Services = app.state.services
    app.state.services = dataclasses.replace(services, **replacements)
    try:
        yield
    finally:
        app.state.services = services


class FailingDatabase:
    """Fails every unit of work with an error whose text must never reach a client."""

    SECRET = "connection to 10.0.0.7 failed: secret-detail"

    def unit_of_work(self, *, read_only: bool = False) -> Any:
        raise RuntimeError(self.SECRET)


@asynccontextmanager
async def serving_with(app: FastAPI, dependency: str, settings: Settings) -> AsyncIterator[None]:
    """Serve with one dependency built from other settings; the others stay as they are."""
    other = build_services(settings)
    try:
        async with serving(
            app, **{field: getattr(other, field) for field in COMPONENT[dependency]}
        ):
            yield
    finally:
        await other.stop()


def unreachable_dependency(
    app: FastAPI, settings: Settings, dependency: str
) -> AbstractAsyncContextManager[None]:
    """Serve with one dependency pointed at a closed port; the others stay real."""
    return serving_with(app, dependency, unreachable(settings, dependency))


# Where the URL of each dependency a FaultProxy can stand in front of is set.
URL_SECTION = {
{%- if cookiecutter.database == "postgres" %}
    "database": "database",
{%- else %}
    "database": "mongodb",
{%- endif %}
    "redis": "redis",
}


@asynccontextmanager
async def behind_proxy(
    app: FastAPI, settings: Settings, dependency: str, **changes: Any
) -> AsyncIterator[FaultProxy]:
    """Serve with one dependency reached through a FaultProxy, the test's to cut."""
    section = URL_SECTION[dependency]
    url = urlsplit(getattr(settings, section).url)
    proxy = await FaultProxy(url.hostname or "127.0.0.1", url.port or 0).start()
    userinfo = url.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    proxied = override(settings, section, url=urlunsplit(url._replace(netloc=netloc)), **changes)
    try:
        async with serving_with(app, dependency, proxied):
            yield proxy
    finally:
        await proxy.close()
